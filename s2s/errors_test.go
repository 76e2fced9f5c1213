package s2s_test

import (
	"errors"
	"fmt"

	"mellium.im/xmpp/stream"

	"github.com/xmppfed/xmppfed/s2s"
)

// A NegotiationError says which step failed; the stream error condition
// it carries is reachable with errors.Is.
func ExampleNegotiationError() {
	var err error = &s2s.NegotiationError{
		Local: "a.example", Remote: "b.example", Step: "stream",
		Err: &s2s.PeerStreamError{Cond: stream.HostUnknown, Text: "no such domain"},
	}
	var ne *s2s.NegotiationError
	if errors.As(err, &ne) {
		fmt.Println(ne.Step, errors.Is(err, stream.HostUnknown))
	}
	fmt.Println(err)
	// Output:
	// stream true
	// s2s: stream a.example->b.example: s2s: peer sent stream error host-unknown: no such domain
}

// A typed dialback error (XEP-0220 §2.4) refuses one domain pair without
// ending the stream.
func ExampleDialbackError() {
	err := fmt.Errorf("piggyback: %w", &s2s.DialbackError{Condition: "item-not-found"})
	var de *s2s.DialbackError
	fmt.Println(errors.As(err, &de), de.Condition)
	// Output: true item-not-found
}
