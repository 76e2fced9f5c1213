// Chatserver is a tiny chat server that federates with real XMPP servers
// through federation.Server: the smallest complete host of the library.
//
//	go run ./examples/chatserver [-domain chat.localhost] [-listen :5269]
//		[-listen-users 127.0.0.1:7000] [-users alice,bob] [-cert FILE -key FILE]
//		[-partners FILE] [-ca FILE] [-ca-out FILE] [-dns HOST:PORT] [-debug] [-xml]
//
// Its users live in memory (-users) and reach it through a line-based
// TCP interface (-listen-users: connect with nc, type "login alice", then
// "msg bob@prosody.localhost hello", "sub JID", "approve JID", "presence
// away lunch", "who", "help"). What arrives from XMPP — messages, chat
// states, receipts, presence, subscription requests, bounces — is printed
// to the logged-in user's connection, or kept for the next login.
//
// The chat server is the federation.Backend: it implements
// translate.Host (delivery to its users, their current presence),
// translate.Roster (a contact list per user holding the RFC 6121
// subscription states), policy.Directory (which users exist) and Bounce,
// with its own small user model. A delivered message that asked for an
// XEP-0184 receipt gets one once the line reached the user's connection.
//
// The policy comes from a TOML file (-partners, a policy.FileStore
// re-read by Policy.Watch when it changes), or from the embedded
// partners.toml, which federates with a Prosody for prosody.localhost on
// 127.0.0.2. The certificate comes from -cert and -key (a certs.Reloader:
// renewed files are used without a restart) or, without them, from a
// throw-away test CA for the domain. With no flags it starts as
// chat.localhost on :5269, users on 127.0.0.1:7000.
//
// README.md next to this file shows how to federate it with a local
// Prosody, step by step.
package main
