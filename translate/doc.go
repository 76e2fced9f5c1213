// Package translate maps XMPP instant messages, presence and subscriptions
// to a small protocol-neutral model and back, so that a chat server that
// embeds xmppfed never touches XML. It implements the instant messaging
// and presence rules of RFC 6121 for a server whose users are not XMPP
// clients, and the extensions listed below. It opens no socket: stanzas
// come in and go out as bytes (what s2s.Stanza.Raw gives and
// s2s.ParseStanza takes). Most hosts use it through package federation;
// use it directly to test a host's mapping or to run the Translator over a
// transport of your own.
//
// # The model
//
// A Stanza is one of four values:
//
//   - *Message: an instant message (Body), or a chat state or receipt
//     alone (Body empty). It keeps the id, the type (Chat or Normal), the
//     body's xml:lang, the subject and thread, the XEP-0085 chat state, an
//     XEP-0184 receipt request or receipt, the XEP-0203 delay and an
//     XEP-0308 correction (which a host may ignore and show as a new
//     message).
//   - *Presence: a presence update in the host's terms: an Availability
//     (Available, Idle, Busy, DoNotDisturb, BeRightBack, Away, Offline, or
//     Unknown when nothing is known), a personal note, its language, the
//     XEP-0319 idle time and the priority.
//   - *Subscription: a request or answer between bare JIDs (RFC 6121 §3):
//     Subscribe, Subscribed, Unsubscribe, Unsubscribed.
//   - *Probe: a presence probe (RFC 6121 §4.3), answered by the
//     Translator; hosts never see one.
//
// Addresses are mellium.im/xmpp/jid values, normalized with the PRECIS
// profiles of RFC 7622; ParseAddress parses one and reports a malformed
// one as ErrMalformedAddress (Decode and ErrorReply apply the same rules,
// which refuse a domain with an empty label). A host user user@domain is the bare JID
// user@domain (and the SIP address sip:user@domain, RFC 7247).
//
// # The codec
//
// Decode reads one stanza (a message, presence or iq in jabber:server,
// declared or inherited) and Encode writes one. Decode uses encoding/xml:
// it refuses XML that is not well-formed, not restricted (RFC 6120
// §11.1: no comment, processing instruction or DOCTYPE) or nested deeper
// than 64 elements, without assuming that the stream reader checked it;
// Encode writes the bytes encoding/xml would write, escapes every text and
// refuses text XML cannot carry (invalid UTF-8, control characters) with
// a *FieldError naming the field. Decode never panics, and every error it
// returns is a stanza.Error with an English text, or ErrIgnore for a
// stanza dropped on purpose (never answered). ErrorReply builds the
// answer to a refused stanza (RFC 6120 §8.3).
//
// DecodeFramed is Decode for a stanza the s2s stream reader already read
// and checked: it reads the bytes without encoding/xml and takes the
// addresses s2s parsed, and gives what Decode gives (a differential fuzz
// test holds it to that); EncodeStanza is Encode returning the addresses
// it wrote with the bytes, for s2s.TrustedStanza. Translator.InboundFramed
// and OutboundEncoded are the Translator's entry points over them, which
// package federation uses.
//
// What Decode makes of each stanza:
//
//	stanza                                          result
//	----------------------------------------------  ----------------------------------------
//	any stanza of type error                        ErrIgnore (RFC 6120 §8.3.1: never answered)
//	iq type result                                  ErrIgnore (RFC 6120 §8.2.3)
//	message type headline                           ErrIgnore (REFERENCE §5.7 #74; RFC 6121 §8.5.3.2.1)
//	not one XML element, restricted XML, deeper     bad-request (modify)
//	  than 64, namespace not jabber:server
//	no from or to                                   bad-request (modify) (RFC 6120 §8.1.1.1, §8.1.2.1)
//	from or to not a JID                            jid-malformed (modify) (RFC 7622)
//	message type groupchat                          service-unavailable (cancel) (#74)
//	message with an XEP-0045 mediated invitation    feature-not-implemented (cancel) (#79), body or not
//	  (muc#user <invite/>) or an XEP-0249 direct
//	  invitation (jabber:x:conference)
//	message with Jingle Message Initiation          feature-not-implemented (cancel) (#80)
//	  (XEP-0353, urn:xmpp:jingle-message:0)
//	message with an out-of-band/HTTP upload offer   feature-not-implemented (cancel) (#80)
//	  (XEP-0066 jabber:x:oob)
//	message chat, normal, no type or an unknown     *Message (RFC 6121 §5.2.2: no type and unknown
//	  type, with a body, a chat state or a receipt    types are normal)
//	message with none of body, chat state or        feature-not-implemented (cancel), "only instant
//	  receipt (an empty body counts as none)          messages, chat states and receipts"
//	two chat states, an unknown chat state, a       bad-request (modify)
//	  receipt or correction without id, a bad
//	  delay stamp, markup inside body/subject/thread
//	presence with no type or unavailable            *Presence through the PresenceMapper
//	presence subscribe, subscribed, unsubscribe,    *Subscription between bare JIDs (RFC 6121 §3.1.2)
//	  unsubscribed
//	presence probe                                  *Probe between bare JIDs (RFC 6121 §4.3)
//	presence of another type; show not chat, away,  bad-request (modify) (RFC 6121 §4.7)
//	  xa or dnd; two shows or priorities; priority
//	  not in -128..127; a bad idle since
//	iq get or set with Jingle (XEP-0166, and        feature-not-implemented (cancel) (#80)
//	  XEP-0234 over it) or file transfer (XEP-0096
//	  si, XEP-0065, XEP-0047, XEP-0066 jabber:iq:oob)
//	any other iq get or set                         service-unavailable (cancel) (RFC 6121 §8.5.3.2.3,
//	                                                  RFC 6120 §8.4: host users have no resource)
//	iq of another type, without id, or with other   bad-request (modify) (RFC 6120 §8.2.3)
//	  than one child
//
// A message with no body and only extensions we do not know (chat markers,
// say) is not silently dropped: RFC 6121 §8.5.3.2.1 has the server deliver
// or store a message for an existing user, and with nothing to deliver the
// sender learns that with feature-not-implemented. Unknown extensions next
// to a body are ignored.
//
// The fields of a message: the body is the first <body/> with no xml:lang
// or the stanza's (RFC 6121 §5.2.3), else the first one; Lang is its
// effective language (its own xml:lang, else the stanza's); its whitespace
// and line breaks are kept exactly (a carriage return travels as &#xD;).
// The subject is chosen the same way, the thread is the first <thread/>.
// ChatState is the XEP-0085 element in http://jabber.org/protocol/chatstates,
// RequestReceipt and ReceiptFor the XEP-0184 <request/> and
// <received id=…/> in urn:xmpp:receipts, Delay the first XEP-0203 <delay
// stamp=…/> in urn:xmpp:delay (an XEP-0082 date-time, kept in UTC), and
// Replaces the id of XEP-0308's <replace/> in urn:xmpp:message-correct:0.
// From and To are kept as addressed: a remote full JID keeps its resource
// (replies go there, RFC 6121 §5.1) and a local full JID too (the
// Translator delivers to the bare user, RFC 6121 §8.5.3.2.1).
//
// Encode writes canonical XML: double quotes, xmlns='jabber:server' on the
// stanza, then from, to, id, type and xml:lang (when Lang is set); a
// message always carries its type (chat or normal), then subject, body,
// thread, the chat state, the receipt request, the receipt, the delay
// (UTC, fractional seconds only when not zero) and the correction. A
// message, subscription or probe without an ID gets a random one
// (crypto/rand), so that answers can refer to it; a presence keeps none. A
// subscription goes from the user's bare JID to the contact's bare JID
// (RFC 6121 §3.1.1-§3.1.2), and so does a probe (RFC 6121 §4.3.1). A
// Message with no Body, ChatState or ReceiptFor, a Presence whose
// Availability is Unknown or out of range, and text XML cannot carry are
// refused.
//
// Bodies are plain text both ways (REFERENCE §5.7 #75): Encode does not
// interpret markup. A host whose bodies are HTML converts them with
// PlainText (line breaks kept, tags dropped, character references
// decoded); RTF is out of scope, the host converts it itself.
//
// For every valid value v, Decode(Encode(v)) is v, with these
// normalizations: a missing ID is generated; subscriptions and probes are
// between bare JIDs; a presence goes through the PresenceMapper both ways
// (below), so its note comes back only when it was shared, and an Offline
// presence has no idle time. The tests prove it with rapid (any value) and
// fuzzing (any input that decodes encodes and decodes to itself).
//
// # Presence mapping
//
// A PresenceMapper maps availability both ways; PresenceTable is the
// default (REFERENCE §4.5), and a table the caller can change
// (SetToXMPP, SetFromXMPP, Clone; Stable checks a changed table):
//
//	host → XMPP   sent
//	------------  ---------------------------------------------
//	Available     available, no <show/>
//	Idle          <show>away</show>, label "Idle", XEP-0319 idle
//	Busy          <show>dnd</show>, label "Busy"
//	DoNotDisturb  <show>dnd</show>
//	BeRightBack   <show>away</show>, label "Be right back"
//	Away          <show>xa</show>
//	Offline       type='unavailable'
//	Unknown       nothing (Encode refuses it)
//
//	XMPP → host                                 read as
//	------------------------------------------  ------------
//	no <show/>, or chat                         Available
//	away                                        Away
//	away with status "Be right back"            BeRightBack
//	away with status "Idle", or XEP-0319 idle   Idle
//	xa                                          Away
//	dnd                                         DoNotDisturb
//	dnd with status "Busy"                      Busy
//	type='unavailable'                          Offline
//	no presence, an error, the stream lost      Unknown (the Translator)
//
// The status text sent is the personal note only when it may be shared —
// Federated partners (REFERENCE §4.3, §5.8 #89) — and is not empty;
// otherwise it is the state's generic label ("Busy", "Be right back",
// "Idle" or none). Coming back, a status that is exactly the label of a
// state with that <show/> selects the state and is not a note; any other
// status is the note. XEP-0319 idle with the <show/> Idle goes out with,
// and no label, reads as Idle. Each state with an empty note round-trips
// to itself, so the table is stable (ToXMPP(FromXMPP(ToXMPP(a))) ==
// ToXMPP(a), REFERENCE §5.8 #88). Idle carries the label "Idle", which
// REFERENCE §4.5 does not have, because away alone reads as Away, which
// goes out as xa: Idle would not be stable. A shared note replaces the
// label, so BeRightBack with a shared note reads back as Away, Busy as
// DoNotDisturb, and Idle as Away unless it has an IdleSince.
//
// # The Translator
//
// Translator runs the rules between the XMPP side and the host (a Host to
// deliver to, a Roster of subscription states, a Gate such as
// *policy.Policy): Inbound decodes a stanza from a remote server, checks
// the partner-type rules of package policy (who may message or subscribe
// without approval, REFERENCE §5.6), runs the RFC 6121 subscription state
// machine (SubState, Appendix A), aggregates presence over a contact's
// resources (highest priority, then most available; REFERENCE §5.8 #92),
// answers probes from authorized watchers only, and delivers to the Host;
// it returns the stanzas to send back (error replies, answers, presence).
// Outbound does the reverse for what a local user sends: an IM to the
// remote full JID that last wrote, a presence broadcast to every watcher
// whose subscription is fresh (with the note only for Federated
// partners), subscription requests and answers. StreamDown reports every
// contact at a lost domain as Unknown, not Offline (REFERENCE §5.8 #91),
// and StreamUp returns the probes to send when the stream is back. It
// opens no socket; set its fields, then use it from any goroutine.
//
// # Stanza errors
//
// A Host reports a delivery failure with an error, which StanzaError turns
// into the stanza error sent back (RFC 6120 §8.3.3 types):
//
//	host error                                stanza error
//	----------------------------------------  -------------------------------------
//	a stanza.Error                            itself
//	a StanzaError() method (*policy.Denial)   what it returns (service-unavailable,
//	                                          forbidden, jid-malformed)
//	ErrUnknownUser                            service-unavailable (cancel), the same
//	                                          text as a user without XMPP access
//	ErrOffline                                recipient-unavailable (wait)
//	ErrTooLarge                               policy-violation (modify)
//	ErrMalformedAddress                       jid-malformed (modify)
//	context.DeadlineExceeded, Canceled        remote-server-timeout (wait)
//	anything else                             internal-server-error (cancel); its
//	                                          text never leaves the server
//
// ErrorReply answers a stanza with such an error: from and to swapped, the
// same kind and id, type='error', the original children when the stanza
// is at most 16 KiB (RFC 6120 §8.3.1 allows them; the sender sees what
// failed), then the <error/> element of RFC 6120 §8.3.2 with the
// condition and an English text (a type or condition RFC 6120 does not
// define goes out as cancel or undefined-condition). It never answers an
// error stanza or an iq result (ErrIgnore), so two servers cannot bounce
// errors forever.
//
// # Specifications
//
// RFC 6120 (stanzas, stanza errors, restricted XML), RFC 6121 (messages,
// presence, subscriptions, server rules), RFC 7622 (addresses), XEP-0082
// (date-time), XEP-0085 (chat states), XEP-0184 (receipts), XEP-0203
// (delay), XEP-0308 (corrections), XEP-0319 (idle); refused: XEP-0045 and
// XEP-0249 (group chat invitations), XEP-0166, XEP-0234 and XEP-0353
// (Jingle), XEP-0096, XEP-0065, XEP-0047 and XEP-0066 (file transfer and
// out-of-band offers).
package translate
