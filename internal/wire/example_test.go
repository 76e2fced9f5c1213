package wire_test

import (
	"encoding/xml"
	"fmt"
	"os"
	"strings"

	"github.com/xmppfed/xmppfed/internal/wire"
)

func ExampleReader() {
	in := `<?xml version='1.0'?>` +
		`<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='a.example' to='b.example' version='1.0'>` +
		` <message from='juliet@a.example' to='romeo@b.example' type='chat'><body>Hi</body></message>` +
		`<db:result from='a.example' to='b.example'>abc123</db:result></stream:stream>`
	r := wire.NewReader(strings.NewReader(in), wire.Limits{})
	h, err := r.ReadHeader()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("stream from", h.From, "to", h.To, "dialback:", h.Dialback)
	for {
		e, err := r.Next()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s %s from=%s\n", e.Name.Space, e.Name.Local, e.AttrValue("from"))
		fmt.Printf("%s\n", e.Raw)
	}
	// Output:
	// stream from a.example to b.example dialback: true
	// jabber:server message from=juliet@a.example
	// <message xmlns='jabber:server' from='juliet@a.example' to='romeo@b.example' type='chat'><body>Hi</body></message>
	// jabber:server:dialback result from=a.example
	// <db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example'>abc123</db:result>
	// wire: peer closed the stream
}

func ExampleWriter() {
	w := wire.NewWriter(os.Stdout)
	_ = w.WriteHeader(wire.Header{From: "a.example", To: "b.example", ID: "s1"})
	fmt.Println()
	_ = w.WriteElement(&wire.Node{
		Name: xml.Name{Space: wire.NSDialback, Local: "result"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "from"}, Value: "a.example"}, {Name: xml.Name{Local: "to"}, Value: "b.example"}},
		Text: "abc123",
	})
	fmt.Println()
	_ = w.WriteWhitespace()
	_ = w.Close()
	fmt.Println()
	// Output:
	// <?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='a.example' to='b.example' id='s1' version='1.0'>
	// <db:result from='a.example' to='b.example'>abc123</db:result>
	//  </stream:stream>
}
