package transport

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/standardwebhooks"
)

// SignatureTolerance is how far a signed timestamp may be from now.
const SignatureTolerance = 5 * time.Minute

// ErrNoSignature says a request carries no webhook signature headers at all. It is Unauthorized: a request that
// needs a signature and has none is answered 401 (POST /events first tries the JWT and API key pair instead).
var ErrNoSignature = userhook.Errorf(userhook.ErrUnauthorized, "no webhook signature")

// WebhookVerifier checks inbound webhook signatures against one or two secrets (two during a rotation):
// Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature), the same with svix-* header names,
// and X-Webhook-Signature: sha256=<hex HMAC of the body>.
type WebhookVerifier struct {
	Secrets [][]byte
	Now     func() time.Time
}

// SignatureScheme names how a request was signed.
type SignatureScheme string

// The accepted schemes.
const (
	SchemeStandard SignatureScheme = "standard-webhooks"
	SchemeSvix     SignatureScheme = "svix"
	SchemeHexHMAC  SignatureScheme = "x-webhook-signature"
)

// Verify returns the scheme of a valid signature, ErrNoSignature when there is none, or an error matching
// userhook.ErrUnauthorized saying what is wrong (never the secret or the expected signature).
func (v *WebhookVerifier) Verify(h http.Header, body []byte) (SignatureScheme, error) {
	scheme, _, err := v.Signer(h, body)
	return scheme, err
}

// Signer is Verify that also says which configured secret (0 or 1) verified the signature, so each sender
// (each secret) can be told apart, for instance by the rate limit.
func (v *WebhookVerifier) Signer(h http.Header, body []byte) (SignatureScheme, int, error) {
	switch {
	case h.Get("webhook-signature") != "" || h.Get("webhook-id") != "":
		i, err := v.verifyStandard(h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature"), body)
		return SchemeStandard, i, err
	case h.Get("svix-signature") != "" || h.Get("svix-id") != "":
		i, err := v.verifyStandard(h.Get("svix-id"), h.Get("svix-timestamp"), h.Get("svix-signature"), body)
		return SchemeSvix, i, err
	case h.Get("X-Webhook-Signature") != "":
		i, err := v.verifyHex(h.Get("X-Webhook-Signature"), body)
		return SchemeHexHMAC, i, err
	}
	return "", -1, ErrNoSignature
}

func unauthorized(reason string) error {
	return &userhook.Error{Code: userhook.ErrUnauthorized, Message: reason}
}

func (v *WebhookVerifier) verifyStandard(id, timestamp, signatures string, body []byte) (int, error) {
	if id == "" || timestamp == "" || signatures == "" {
		return -1, unauthorized("webhook signature needs the id, timestamp and signature headers")
	}
	if len(v.Secrets) == 0 {
		return -1, unauthorized("no webhook secret is configured to verify signatures")
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return -1, unauthorized("webhook timestamp is not a Unix time in seconds")
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	skew := now().Sub(time.Unix(ts, 0))
	if skew > SignatureTolerance {
		return -1, unauthorized("webhook timestamp is too old")
	}
	if skew < -SignatureTolerance {
		return -1, unauthorized("webhook timestamp is too far in the future")
	}
	if i := standardwebhooks.Match(signatures, id, timestamp, body, v.Secrets); i >= 0 {
		return i, nil
	}
	return -1, unauthorized("webhook signature does not match")
}

func (v *WebhookVerifier) verifyHex(header string, body []byte) (int, error) {
	if len(v.Secrets) == 0 {
		return -1, unauthorized("no webhook secret is configured to verify signatures")
	}
	value, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	got, err := hex.DecodeString(value)
	if !ok || err != nil {
		return -1, unauthorized("X-Webhook-Signature must be sha256=<hex>")
	}
	for si, secret := range v.Secrets {
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		if hmac.Equal(got, mac.Sum(nil)) {
			return si, nil
		}
	}
	return -1, unauthorized("webhook signature does not match")
}
