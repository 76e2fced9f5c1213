package s2s

import (
	"encoding/base64"
	"strings"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/internal/wire"
)

// SASL failure conditions we send (RFC 6120 §6.5).
const (
	saslNotAuthorized    = "not-authorized"
	saslInvalidAuthzid   = "invalid-authzid"
	saslInvalidMechanism = "invalid-mechanism"
	saslMalformed        = "malformed-request"
)

// checkAuthzid validates the initial response of SASL EXTERNAL from a
// server whose stream header said from (XEP-0178 §3, RFC 6120 §6.4.6):
// empty or "=" means "the identity of the certificate", otherwise the
// base64-decoded authzid must be the from domain. It returns the SASL
// failure condition, or "" when acceptable.
func checkAuthzid(text, from string) string {
	text = strings.TrimSpace(text)
	if text == "" || text == "=" {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return saslMalformed
	}
	d, err := certs.NormalizeDomain(string(raw))
	if err != nil || d != from {
		return saslInvalidAuthzid
	}
	return ""
}

// saslFailure renders <failure/> with a condition.
func saslFailure(cond string) []byte {
	return []byte("<failure xmlns='" + wire.NSSASL + "'><" + cond + "/></failure>")
}

// externalIn handles an <auth/> element on an inbound stream as the
// receiving server (XEP-0178 §3): EXTERNAL is accepted only when it was
// offered (TLS up, the peer's certificate verified for its from domain,
// settings allow SASL) and the authzid is the from domain. It reports
// whether authentication succeeded; on false a <failure/> was sent and the
// peer may fall back to dialback.
func (st *stream) externalIn(el *wire.Element, offered bool) (bool, error) {
	mech := el.AttrValue("mechanism")
	if mech != "EXTERNAL" {
		return false, st.write(saslFailure(saslInvalidMechanism))
	}
	if !offered {
		return false, st.write(saslFailure(saslNotAuthorized))
	}
	text, err := el.Text()
	if err != nil {
		return false, st.write(saslFailure(saslMalformed))
	}
	if cond := checkAuthzid(text, st.remote); cond != "" {
		st.srv.log.Info("s2s: SASL EXTERNAL authzid refused", "remote", st.remote, "cond", cond)
		return false, st.write(saslFailure(cond))
	}
	if st.peer == nil {
		return false, st.write(saslFailure(saslNotAuthorized))
	}
	if err := st.write([]byte("<success xmlns='" + wire.NSSASL + "'/>")); err != nil {
		return false, err
	}
	return true, nil
}
