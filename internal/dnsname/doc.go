// Package dnsname normalizes and matches DNS domain names the way the
// policy package stores and compares them.
//
// Normalize turns any accepted spelling of a domain (U-labels, mixed case,
// one trailing dot) into its canonical form: IDNA A-labels (RFC 5891,
// the UTS #46 Lookup profile of golang.org/x/net/idna), lower case, no
// trailing dot. It refuses names that cannot be DNS host names: empty
// names or labels, labels over 63 octets, names over 253 octets
// (RFC 1035 §2.3.4) and characters outside letters, digits and hyphen
// (RFC 952, RFC 1123 §2.1) after conversion.
//
// Match compares a normalized name with a pattern in which '*' matches any
// run of characters, for administrators' listings ("*.org").
package dnsname
