package wire

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
)

// Element is one complete top-level element read from the stream.
type Element struct {
	// Name is the namespace-resolved name, e.g. {jabber:server message},
	// {jabber:server:dialback result}.
	Name xml.Name
	// Attr holds the attributes of the start tag, namespace-resolved and with
	// references decoded; namespace declarations are removed.
	Attr []xml.Attr
	// Raw is the whole element as self-contained XML: when the element used
	// a namespace declared on the stream header (the default jabber:server,
	// db:, stream:), the needed xmlns declarations are inserted right after
	// the element's name, so parsing Raw on its own yields the same names.
	// Everything else is the bytes as read. Raw is owned by the caller.
	Raw []byte

	attrBuf [6]xml.Attr
	tree    *Node
	treeErr error
}

// AttrValue returns the value of the un-namespaced attribute local, or "".
func (e *Element) AttrValue(local string) string {
	for _, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// Children parses Raw into a tree (once; the result is cached) and returns
// the child elements. Meant for small negotiation elements (features, SASL,
// dialback), not for relaying stanzas.
func (e *Element) Children() ([]*Node, error) {
	n, err := e.Node()
	if err != nil {
		return nil, err
	}
	return n.Children, nil
}

// Text returns the character data directly inside the element (e.g. a
// dialback key or SASL base64 data), concatenated and with references
// decoded, not trimmed.
func (e *Element) Text() (string, error) {
	n, err := e.Node()
	if err != nil {
		return "", err
	}
	return n.Text, nil
}

// Node returns the whole element as a tree, parsed from Raw on first use.
func (e *Element) Node() (*Node, error) {
	if e.tree == nil && e.treeErr == nil {
		e.tree, e.treeErr = ParseNode(e.Raw)
	}
	return e.tree, e.treeErr
}

// Node is a small DOM node used for negotiation elements (features, SASL,
// dialback).
type Node struct {
	Name     xml.Name   // namespace-resolved
	Attr     []xml.Attr // without namespace declarations
	Children []*Node    // child elements in document order
	Text     string     // character data directly inside, concatenated
}

// Child returns the first child named {space}local, or nil.
func (n *Node) Child(space, local string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Name.Space == space && c.Name.Local == local {
			return c
		}
	}
	return nil
}

// AttrValue returns the value of the un-namespaced attribute local, or "".
func (n *Node) AttrValue(local string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// ParseNode parses one self-contained XML element (such as Element.Raw)
// into a tree with encoding/xml. Anything after the element is an error.
func ParseNode(raw []byte) (*Node, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	var stack []*Node
	var root *Node
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if root == nil || len(stack) > 0 {
				return nil, fmt.Errorf("wire: incomplete element: %w", io.ErrUnexpectedEOF)
			}
			return root, nil
		}
		if err != nil {
			return nil, fmt.Errorf("wire: parsing element: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, fmt.Errorf("wire: data after the element")
			}
			n := &Node{Name: t.Name}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
					continue
				}
				n.Attr = append(n.Attr, a)
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(t)
			} else if len(bytes.TrimLeft(t, " \t\r\n")) > 0 {
				return nil, fmt.Errorf("wire: text outside the element")
			}
		default:
			return nil, fmt.Errorf("wire: unexpected %T in element", tok)
		}
	}
}
