#!/usr/bin/python3
"""A real XMPP user for xmppfed's interop suite, written with slixmpp.

internal/interop/pyclient.go runs it; it is not meant for people, but it can
be tried by hand:

    XMPPFED_PYCLIENT_PASSWORD=secret python3 slixmpp_client.py \
        --jid alice@prosody.test --host 127.0.0.2 --port 5222 --ca ca.pem

It connects to the given c2s address (no DNS), requires STARTTLS with the
server's certificate verified against --ca for the JID's domain, logs in
(the password comes from the environment, not the command line), fetches
the roster (so subscription requests are delivered to it, RFC 6121 §3.1.3)
and sends initial presence.

Protocol, one JSON object per line:

  stdin, commands (each with a "seq" number echoed in its ack):
    {"cmd": "send_message", "to", "body", "id", "chat_state", "request_receipt"}
    {"cmd": "chat_state", "to", "state"}
    {"cmd": "receipt", "to", "id"}
    {"cmd": "presence", "to", "show", "status", "unavailable"}
    {"cmd": "subscribe", "to"}
    {"cmd": "approve", "to"}
    {"cmd": "quit"}
  stdout, reports:
    {"kind": "ready", "jid": FULL_JID}         once the session has started
    {"kind": "ack", "cmd", "seq", "id"}        after each command ("error" if it failed)
    {"kind": "failed", "error"}                login failed; the process exits 1
    {"kind": "message" | "presence" | "subscribe" | "subscribed" |
     "unsubscribe" | "unsubscribed" | "error", "stanza", "from", "id",
     "body", "chat_state", "receipt_request", "receipt_for", "show",
     "status", "unavailable", "error_condition", "error_type"}
                                               one per stanza received

Nothing is answered automatically: subscription requests are not approved
(the scenario decides), receipts are not sent (XEP-0184 auto-ack off),
XEP-0199 pings are not loaded. Logs go to standard error. The process ends
on "quit", on end of input, or when the connection is lost.
"""

import argparse
import asyncio
import json
import logging
import os
import sys
import threading

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

CLIENT_NS = "jabber:client"
STANZAS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"
CHATSTATES_NS = "http://jabber.org/protocol/chatstates"
RECEIPTS_NS = "urn:xmpp:receipts"
CHAT_STATES = ("active", "composing", "paused", "inactive", "gone")
SHOWS = ("", "away", "chat", "dnd", "xa")

log = logging.getLogger("slixmpp_client")


def emit(obj):
    """Writes one report line to stdout."""
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def local(tag):
    """Splits an ElementTree tag into (namespace, local name)."""
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def describe(xml):
    """Turns a received message or presence element into a report."""
    _, tag = local(xml.tag)
    typ = xml.get("type", "")
    ev = {"stanza": tag, "from": xml.get("from", ""), "id": xml.get("id", "")}
    for child in xml:
        ns, name = local(child.tag)
        if ns == CHATSTATES_NS and name in CHAT_STATES:
            ev["chat_state"] = name
        elif ns == RECEIPTS_NS and name == "request":
            ev["receipt_request"] = True
        elif ns == RECEIPTS_NS and name == "received":
            ev["receipt_for"] = child.get("id", "")
        elif ns == CLIENT_NS and name == "body":
            ev["body"] = child.text or ""
        elif ns == CLIENT_NS and name == "show":
            ev["show"] = child.text or ""
        elif ns == CLIENT_NS and name == "status":
            ev["status"] = child.text or ""
        elif ns == CLIENT_NS and name == "error":
            ev["error_type"] = child.get("type", "")
            for cond in child:
                cns, cname = local(cond.tag)
                if cns == STANZAS_NS and cname != "text":
                    ev["error_condition"] = cname
    if typ == "error":
        ev["kind"] = "error"
    elif tag == "message":
        ev["kind"] = "message"
    elif typ in ("", "unavailable"):
        ev["kind"] = "presence"
        ev["unavailable"] = typ == "unavailable"
    else:
        ev["kind"] = typ  # subscribe, subscribed, unsubscribe, unsubscribed, probe
    return ev


class User(slixmpp.ClientXMPP):
    """The logged-in user: reports every stanza, acts on commands."""

    def __init__(self, jid, password, domain, ca_file):
        super().__init__(jid, password)
        self.finished = asyncio.Event()
        self.ready = False
        # TLS: the server's certificate must verify against the test CA
        # for the JID's domain, whatever address we connect to.
        self.ca_certs = ca_file
        self.default_domain = domain
        # No SCRAM or PLAIN before TLS (slixmpp 1.8 allows unencrypted
        # SCRAM by default and does not enforce force_starttls itself).
        self["feature_mechanisms"].unencrypted_scram = False
        self["feature_mechanisms"].unencrypted_plain = False
        # The scenario approves or refuses subscriptions.
        self.auto_authorize = None
        self.auto_subscribe = False
        self.register_plugin("xep_0085")
        self.register_plugin("xep_0184")
        self["xep_0184"].auto_ack = False
        self["xep_0184"].auto_request = False
        for name in ("message", "presence"):
            self.register_handler(Callback(
                "report " + name,
                MatchXPath("{%s}%s" % (CLIENT_NS, name)),
                self.report))
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("failed_auth", self.on_failure("authentication failed"))
        self.add_event_handler("connection_failed", self.on_failure("connection failed"))
        self.add_event_handler("disconnected", self.on_disconnected)

    def on_failure(self, what):
        def handler(detail=None):
            emit({"kind": "failed", "error": "%s: %s" % (what, detail)})
            self.exit_code = 1
            self.finished.set()
        return handler

    def on_disconnected(self, reason=None):
        if not self.ready:
            emit({"kind": "failed", "error": "disconnected before the session started: %s" % (reason,)})
            self.exit_code = 1
        self.finished.set()

    async def on_session_start(self, _):
        if "starttls" not in self.features:
            emit({"kind": "failed", "error": "the session started without STARTTLS"})
            self.exit_code = 1
            self.disconnect()
            return
        await self.get_roster()
        self.send_presence()
        self.ready = True
        emit({"kind": "ready", "jid": str(self.boundjid)})

    def report(self, stanza):
        emit(describe(stanza.xml))

    def command(self, line):
        """Runs one command line from stdin; answers with an ack."""
        try:
            c = json.loads(line)
        except ValueError as e:
            emit({"kind": "ack", "cmd": "", "seq": -1, "error": "bad JSON: %s" % e})
            return
        ack = {"kind": "ack", "cmd": c.get("cmd", ""), "seq": c.get("seq", -1)}
        try:
            ack.update(self.run(c))
        except Exception as e:  # reported to the caller, never fatal
            log.exception("command %r", c)
            ack["error"] = "%s: %s" % (type(e).__name__, e)
        emit(ack)

    def run(self, c):
        cmd = c.get("cmd")
        if cmd == "send_message":
            msg = self.make_message(mto=c["to"], mbody=c.get("body") or None, mtype="chat")
            msg["id"] = c.get("id") or self.new_id()
            if c.get("chat_state"):
                msg["chat_state"] = check(c["chat_state"], CHAT_STATES, "chat state")
            if c.get("request_receipt"):
                msg["request_receipt"] = True
            msg.send()
            return {"id": msg["id"]}
        if cmd == "chat_state":
            msg = self.make_message(mto=c["to"], mtype="chat")
            msg["id"] = self.new_id()
            msg["chat_state"] = check(c.get("state", ""), CHAT_STATES, "chat state")
            msg.send()
            return {"id": msg["id"]}
        if cmd == "receipt":
            if not c.get("id"):
                raise ValueError("receipt without an id")
            msg = self.make_message(mto=c["to"])
            msg["id"] = self.new_id()
            msg["receipt"] = c["id"]
            msg.send()
            return {"id": msg["id"]}
        if cmd == "presence":
            pres = self.make_presence(pto=c.get("to") or None)
            if c.get("unavailable"):
                pres["type"] = "unavailable"
            else:
                show = check(c.get("show", ""), SHOWS, "show")
                if show:
                    pres["show"] = show
            if c.get("status"):
                pres["status"] = c["status"]
            pres.send()
            return {}
        if cmd in ("subscribe", "approve"):
            ptype = "subscribe" if cmd == "subscribe" else "subscribed"
            self.send_presence(pto=c["to"], ptype=ptype)
            return {}
        if cmd == "quit":
            self.loop.call_soon(self.quit)
            return {}
        raise ValueError("unknown command %r" % cmd)

    def quit(self):
        if self.ready:
            self.send_presence(ptype="unavailable")
        self.disconnect(wait=2)
        # A server that never closes its side must not keep us alive.
        self.loop.call_later(5, self.finished.set)


def check(value, allowed, what):
    if value not in allowed:
        raise ValueError("%s %r not one of %s" % (what, value, ", ".join(a or '""' for a in allowed)))
    return value


def read_commands(user, loop):
    """Feeds stdin's lines to the event loop; end of input means quit."""
    for line in sys.stdin:
        if line.strip():
            loop.call_soon_threadsafe(user.command, line)
    loop.call_soon_threadsafe(user.quit)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jid", required=True, help="the user's bare JID")
    ap.add_argument("--host", required=True, help="the server's c2s address")
    ap.add_argument("--port", type=int, default=5222)
    ap.add_argument("--ca", required=True, help="PEM file of the CA to trust")
    ap.add_argument("--resource", default="slixmpp")
    ap.add_argument("--debug", action="store_true", help="log every stanza to stderr")
    args = ap.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    password = os.environ.get("XMPPFED_PYCLIENT_PASSWORD")
    if password is None:
        emit({"kind": "failed", "error": "XMPPFED_PYCLIENT_PASSWORD is not set"})
        return 2

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    domain = args.jid.partition("@")[2].partition("/")[0]
    user = User("%s/%s" % (args.jid, args.resource), password, domain, args.ca)
    user.exit_code = 0
    user.connect(address=(args.host, args.port), force_starttls=True)
    threading.Thread(target=read_commands, args=(user, loop), daemon=True).start()
    loop.run_until_complete(user.finished.wait())
    return user.exit_code


if __name__ == "__main__":
    sys.exit(main())
