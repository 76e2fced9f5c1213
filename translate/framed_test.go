package translate_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	xwire "github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// streamHeader opens the stream the differential test frames stanzas in,
// as a remote server's stream would.
const streamHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='a.example' to='b.example' id='s1' version='1.0'>`

// framed reads data as internal/wire frames it on a stream and returns
// the first element's Raw with the addresses s2s would parse from it, or
// ok false when s2s would not hand it to translate (the framer refuses
// it, it is not a jabber:server message, presence or iq, or an address is
// missing or not a JID).
func framed(data []byte) (raw []byte, from, to jid.JID, ok bool) {
	r := xwire.NewReader(io.MultiReader(strings.NewReader(streamHeader), bytes.NewReader(data)), xwire.Limits{})
	if _, err := r.ReadHeader(); err != nil {
		return nil, jid.JID{}, jid.JID{}, false
	}
	e, err := r.Next()
	if err != nil || e.Name.Space != xwire.NSServer {
		return nil, jid.JID{}, jid.JID{}, false
	}
	switch e.Name.Local {
	case "message", "presence", "iq":
	default:
		return nil, jid.JID{}, jid.JID{}, false
	}
	from, err1 := jid.Parse(e.AttrValue("from"))
	to, err2 := jid.Parse(e.AttrValue("to"))
	if err1 != nil || err2 != nil {
		return nil, jid.JID{}, jid.JID{}, false
	}
	return e.Raw, from, to, true
}

// sameResult reports how Decode's and DecodeFramed's results differ, or "".
func sameResult(v1 translate.Stanza, err1 error, v2 translate.Stanza, err2 error) string {
	switch {
	case err1 == nil && err2 == nil:
		if !reflect.DeepEqual(v1, v2) {
			return "values differ"
		}
	case err1 == nil || err2 == nil:
		return "only one failed"
	case errors.Is(err1, translate.ErrIgnore) != errors.Is(err2, translate.ErrIgnore):
		return "only one ignored it"
	case !errors.Is(err1, translate.ErrIgnore):
		e1, e2 := translate.StanzaError(err1), translate.StanzaError(err2)
		if e1.Condition != e2.Condition || e1.Type != e2.Type {
			return "conditions differ"
		}
	}
	return ""
}

// checkFramed compares DecodeFramed with Decode on data, if the framer
// accepts it: with the addresses s2s parsed, and with addresses that do
// not match (which DecodeFramed must ignore).
func checkFramed(t *testing.T, data []byte) {
	// Never a panic, whatever the bytes and addresses (the result is not
	// specified).
	_, _ = translate.DecodeFramed(data, jid.JID{}, jid.JID{}, nil)
	if a, err := jid.Parse("a@x.example/r"); err == nil {
		_, _ = translate.DecodeFramed(data, a, a.Domain(), nil)
	}
	raw, from, to, ok := framed(data)
	if !ok {
		return
	}
	v1, err1 := translate.Decode(raw, nil)
	for _, h := range [][2]jid.JID{{from, to}, {jid.JID{}, jid.JID{}}, {to, from}, {from.Bare(), to.Domain()}} {
		v2, err2 := translate.DecodeFramed(raw, h[0], h[1], nil)
		if d := sameResult(v1, err1, v2, err2); d != "" {
			t.Fatalf("%s for %q (hints %v, %v):\nDecode:       %#v, %v\nDecodeFramed: %#v, %v", d, raw, h[0], h[1], v1, err1, v2, err2)
		}
	}
}

// framedSeeds returns stanzas rich in what the two readers must agree on.
func framedSeeds() []string {
	return []string{
		chat200,
		`<message from='a@x.example/r' to='b@y.example' type='chat' id='1' xml:lang='en'><body xml:lang='de'>Hallo</body><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		`<message from='a@x.example' to='b@y.example'><body>a&amp;b&lt;&#x41;&#66;&apos;&quot;&gt;</body><subject><![CDATA[<x>]]></subject></message>`,
		"<message from='a@x.example' to='b@y.example'><body>l1\r\nl2\rl3&#13;&#10;\r&#10;</body><thread>t\r\n</thread></message>",
		`<message from='a@x.example' to='b@y.example'><body>x<b/></body></message>`,
		`<message from='a@x.example' to='b@y.example' xmlns:r='urn:xmpp:receipts'><body>x</body><r:request/><r:received id='9'/></message>`,
		`<message from='a@x.example' to='b@y.example'><body>x</body><delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z'/><replace xmlns='urn:xmpp:message-correct:0' id='r1'/></message>`,
		`<message from='a@x.example' to='b@y.example' type='groupchat'><body>x</body></message>`,
		`<message from='a@x.example' to='b@y.example' type='headline'><body>x</body></message>`,
		`<message from='a@x.example' to='b@y.example' type='error'><body>x</body></message>`,
		`<message from='a@x.example' to='b@y.example'><x xmlns='jabber:x:conference' jid='r@c.example'/></message>`,
		`<message from='A@X.example' to='b@y.example.'><body>x</body></message>`,
		`<message from='A@X.example/R' to='b@Y.example'><body>x</body></message>`,
		`<message from='a@x.example/b&#97;l' to='b&#64;y.example'><body>x</body></message>`,
		`<message from='a@x.example' from='c@z.example' to='b@y.example'><body>x</body></message>`,
		`<message from='a@x..example' to='b@y.example'><body>x</body></message>`,
		`<presence from='a@x.example/r' to='b@y.example'><show>away</show><status>out</status><priority>-5</priority><idle xmlns='urn:xmpp:idle:1' since='2020-01-01T00:00:00Z'/></presence>`,
		`<presence from='a@x.example/r' to='b@y.example' type='unavailable'/>`,
		`<presence from='a@x.example/r' to='b@y.example' type='subscribe' id='s'/>`,
		`<presence from='a@x.example' to='b@y.example' type='probe'/>`,
		`<presence from='a@x.example' to='b@y.example'><show>bogus</show></presence>`,
		`<iq from='a@x.example/r' to='b@y.example' type='get' id='q'><query xmlns='jabber:iq:version'/></iq>`,
		`<iq from='a@x.example/r' to='b@y.example' type='set' id='q'><jingle xmlns='urn:xmpp:jingle:1'/></iq>`,
		`<iq from='a@x.example/r' to='b@y.example' type='result' id='q'/>`,
		`<message xmlns='jabber:server' from='a@x.example' to='b@y.example'><s:body xmlns:s='jabber:server'>x</s:body></message>`,
		`<message from='a@x.example' to='b@y.example'><body xmlns=''>x</body><body>y</body></message>`,
		`<message from='a@x.example' to='b@y.example'><body>]]&gt;</body></message>`,
	}
}

// TestDecodeFramedSeeds runs the differential check on the seeds alone.
func TestDecodeFramedSeeds(t *testing.T) {
	for _, s := range framedSeeds() {
		// Not framed, or not handed on by s2s: a domain with an empty
		// label (jid.Parse refuses it), a repeated attribute.
		refused := strings.Contains(s, "..") || strings.Contains(s, "example.'") || strings.Count(s, " from=") > 1
		if _, _, _, ok := framed([]byte(s)); !ok && !refused {
			t.Errorf("the framer refuses the seed %q", s)
		}
		checkFramed(t, []byte(s))
	}
	// Deep nesting: the same depth limit (the framer's default is 64 too).
	deep := `<message from='a@x.example' to='b@y.example'><body>x</body>` + strings.Repeat("<a>", 63) + strings.Repeat("</a>", 63) + `</message>`
	checkFramed(t, []byte(deep))
}

// FuzzDecodeFramedMatchesDecode is the differential fuzz test: for
// anything internal/wire frames as a stanza s2s would hand on,
// DecodeFramed and Decode give the same value or the same error
// condition. Its seeds include FuzzDecode's corpus.
func FuzzDecodeFramedMatchesDecode(f *testing.F) {
	for _, s := range framedSeeds() {
		f.Add([]byte(s))
	}
	for _, dir := range []string{"FuzzDecode", "FuzzTranslatorInbound"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", dir, "*"))
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil {
				if v, ok := corpusBytes(b); ok {
					f.Add(v)
				}
			}
		}
	}
	f.Fuzz(checkFramed)
}

// corpusBytes returns the one []byte or string value of a fuzz corpus
// file ("go test fuzz v1" then one line []byte("...") or string("...")).
func corpusBytes(b []byte) ([]byte, bool) {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		return nil, false
	}
	v := lines[1]
	for _, p := range []string{"[]byte(", "string("} {
		if strings.HasPrefix(v, p) && strings.HasSuffix(v, ")") {
			s, err := strconv.Unquote(v[len(p) : len(v)-1])
			return []byte(s), err == nil
		}
	}
	return nil, false
}

// inboundWorld is a Translator with the roster and partners of
// FuzzTranslatorInbound, and its host.
func inboundWorld(tb testing.TB, p *policy.Policy) (*translate.Translator, *fakeHost) {
	ctx := context.Background()
	roster := new(translate.MemRoster)
	states := []translate.SubState{translate.Both, translate.To, translate.From, translate.NonePendingOut}
	for i, remote := range []string{"alice@fed.example", "vera@ver.example", "uma@unv.example", "dave@fed.example"} {
		if err := roster.SetState(ctx, bob, jid.MustParse(remote), states[i]); err != nil {
			tb.Fatal(err)
		}
	}
	host := new(fakeHost)
	host.setCurrent(bob, translate.Busy, "note")
	return &translate.Translator{Host: host, Roster: roster, Gate: p, MaxMessageBytes: 4096}, host
}

// FuzzInboundFramedMatchesInbound holds Translator.InboundFramed to
// Inbound: for anything the framer frames as a stanza s2s hands on, the
// same replies (ids aside), the same deliveries to the host, the same
// error or none.
func FuzzInboundFramedMatchesInbound(f *testing.F) {
	for _, s := range []string{
		`<message xmlns='jabber:server' from='alice@fed.example/r' to='bob@corp.example' type='chat' id='1'><body>hi</body></message>`,
		`<message xmlns='jabber:server' from='uma@unv.example/r' to='bob@corp.example' type='normal'><body>hi</body></message>`,
		`<message from='alice@fed.example/r' to='bob@corp.example'><body>a&amp;b</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		`<message from='alice@fed.example/r' to='bob@corp.example' type='groupchat'><body>x</body></message>`,
		`<presence xmlns='jabber:server' from='alice@fed.example/r' to='bob@corp.example'><show>dnd</show><priority>-3</priority></presence>`,
		`<presence xmlns='jabber:server' from='uma@unv.example' to='bob@corp.example' type='subscribe'/>`,
		`<presence xmlns='jabber:server' from='alice@fed.example' to='bob@corp.example' type='probe'/>`,
		`<presence from='vera@ver.example' to='bob@corp.example' type='probe' id='p1'/>`,
		`<presence from='Alice@fed.example' to='bob@corp.example' type='unsubscribe'/>`,
		`<iq from='alice@fed.example/r' to='bob@corp.example' type='get' id='q'><query xmlns='jabber:iq:version'/></iq>`,
	} {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	p, err := policy.New(ctx, policy.NewMemStore(&policy.Config{
		Partners: []policy.Partner{
			{Domain: "fed.example", Type: policy.Federated},
			{Domain: "ver.example", Type: policy.PublicVerified},
			{Domain: "unv.example", Type: policy.PublicUnverified},
		},
		Policies: []policy.AccessPolicy{{Name: "global", EnableXMPPAccess: true, EnableFederationAccess: true}},
	}), nil)
	if err != nil {
		f.Fatal(err)
	}
	// The id a reply gets when the stanza it answers had none is random.
	randomIDs := regexp.MustCompile(` id="[^"]*"`)
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, from, to, ok := framed(data)
		if !ok {
			return
		}
		tr1, h1 := inboundWorld(t, p)
		tr2, h2 := inboundWorld(t, p)
		out1, err1 := tr1.Inbound(ctx, raw)
		out2, err2 := tr2.InboundFramed(ctx, raw, from, to)
		if (err1 == nil) != (err2 == nil) || len(out1) != len(out2) {
			t.Fatalf("%q: Inbound = %q, %v; InboundFramed = %q, %v", raw, out1, err1, out2, err2)
		}
		for i := range out1 {
			if a, b := randomIDs.ReplaceAll(out1[i], nil), randomIDs.ReplaceAll(out2[i], nil); !bytes.Equal(a, b) {
				t.Fatalf("%q: reply %d:\nInbound:       %s\nInboundFramed: %s", raw, i, out1[i], out2[i])
			}
		}
		h1.mu.Lock()
		h2.mu.Lock()
		defer h1.mu.Unlock()
		defer h2.mu.Unlock()
		if !reflect.DeepEqual(h1.msgs, h2.msgs) || !reflect.DeepEqual(h1.pres, h2.pres) || !reflect.DeepEqual(h1.subs, h2.subs) {
			t.Fatalf("%q: the host got\n%+v %+v %+v\nand\n%+v %+v %+v", raw, h1.msgs, h1.pres, h1.subs, h2.msgs, h2.pres, h2.subs)
		}
	})
}
