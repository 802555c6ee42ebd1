package transport

import (
	"github.com/userhook/userhook/standardwebhooks"
	"net/http"
	"testing"
	"time"
)

func BenchmarkDecodePostUsers(b *testing.B) {
	body := []byte(`{"detail":{"data":{"user_name":"user@example.com","user_id":"auth0|abc"}}}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodePostUsers(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeCloudEventStructured(b *testing.B) {
	body := []byte(`{"specversion":"1.0","id":"1234","source":"com.authpi.webhooks/v1/wh","type":"event","time":"2024-01-01T03:21:36Z",
		"datacontenttype":"application/json","data":{"id":"9876","type":"user.created","trace":"abc","source":"com.authpi/v1",
		"subject":{"user_id":"user-1"},"data":{"email":"user-1@example.com","name":"Ada","plan":"pro"}}}`)
	h := http.Header{"Content-Type": {MediaCloudEvent}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeCloudEvents(h, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyStandardSignature(b *testing.B) {
	secret := []byte("bench-webhook-key-0123456789abcd")
	body := []byte(`{"specversion":"1.0","id":"1","source":"s","type":"user.created","subject":"u","data":{"email":"a@example.com"}}`)
	now := time.Unix(1_700_000_000, 0)
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", "1700000000")
	h.Set("webhook-signature", standardwebhooks.Sign("msg_1", now, body, secret))
	v := &WebhookVerifier{Secrets: [][]byte{secret}, Now: func() time.Time { return now }}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(h, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeCloudEventPlain is the load bench's event: a structured user.created with its own data.
func BenchmarkDecodeCloudEventPlain(b *testing.B) {
	body := []byte(`{"specversion":"1.0","id":"ce-1-1-1","source":"https://idp.example.com","type":"user.created","subject":"user-ce-1-1-1","time":"2024-01-01T00:00:00Z","datacontenttype":"application/json","data":{"email":"ce-1-1-1@example.com","name":"Bench User","plan":"pro"}}`)
	h := http.Header{"Content-Type": {MediaCloudEvent}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeCloudEvents(h, body); err != nil {
			b.Fatal(err)
		}
	}
}
