package dnsname_test

import (
	"fmt"

	"github.com/xmppfed/xmppfed/internal/dnsname"
)

func ExampleNormalize() {
	for _, d := range []string{"Bücher.Example.", "FABRIKAM.com", "bad..name"} {
		n, err := dnsname.Normalize(d)
		fmt.Printf("%q %v\n", n, err)
	}
	// Output:
	// "xn--bcher-kva.example" <nil>
	// "fabrikam.com" <nil>
	// "" invalid domain "bad..name": empty label
}
