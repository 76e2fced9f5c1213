// Package federation is the server a chat host embeds to federate with
// XMPP. (Overview to be written.)
package federation
