package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckAddressAllowed(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"8.8.8.8",
		"1.1.1.1",
		"93.184.216.34",
		"2606:4700:4700::1111",
		"2001:4860:4860::8888",
		"::ffff:8.8.8.8",            // IPv4-mapped public
		"64:ff9b::808:808",          // NAT64 of 8.8.8.8
		"2002:808:808::1",           // 6to4 of 8.8.8.8
		"100.63.255.255",            // just below CGNAT
		"100.128.0.0",               // just above CGNAT
		"172.15.255.255",            // just below 172.16/12
		"172.32.0.0",                // just above 172.16/12
		"198.17.255.255",            // just below benchmarking
		"198.20.0.0",                // just above benchmarking
		"192.0.1.1",                 // just above 192.0.0.0/24
		"223.255.255.255",           // just below multicast
		"169.253.255.255",           // just below link-local
		"fe7f:ffff::1",              // not fe80::/10
		"fbff:ffff::1",              // not fc00::/7
		"2606:4700:4700::1111%eth0", // a zone does not change the verdict
	} {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			assert.NoError(t, CheckAddress(netip.MustParseAddr(s)))
		})
	}
}

func TestCheckAddressRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr   string
		reason string
	}{
		{"0.0.0.0", "is an unspecified address"},
		{"::", "is an unspecified address"},
		{"0.1.2.3", "0.0.0.0/8"},
		{"127.0.0.1", "is a loopback address"},
		{"127.255.255.254", "is a loopback address"},
		{"::1", "is a loopback address"},
		{"::ffff:127.0.0.1", "is a loopback address"},
		{"10.0.0.1", "is a private address"},
		{"10.255.255.255", "is a private address"},
		{"172.16.0.1", "is a private address"},
		{"172.31.255.255", "is a private address"},
		{"192.168.1.1", "is a private address"},
		{"::ffff:192.168.1.1", "is a private address"},
		{"fc00::1", "is a private address"},
		{"fd12:3456::1", "is a private address"},
		{"fd00:ec2::254", "AWS IPv6 cloud metadata"},
		{"169.254.169.254", "is link-local (cloud metadata lives there)"},
		{"169.254.0.1", "is link-local (cloud metadata lives there)"},
		{"::ffff:169.254.169.254", "is link-local (cloud metadata lives there)"},
		{"fe80::1", "is link-local (cloud metadata lives there)"},
		{"fe80::1%eth0", "is link-local (cloud metadata lives there)"},
		{"febf:ffff::1", "is link-local (cloud metadata lives there)"},
		{"224.0.0.1", "is a link-local multicast address"},
		{"ff02::1", "is a link-local multicast address"},
		{"239.255.255.250", "is a multicast address"},
		{"ff05::2", "is a multicast address"},
		{"ff0e::1", "is a multicast address"},
		{"100.64.0.1", "CGNAT"},
		{"100.127.255.255", "CGNAT"},
		{"192.0.0.1", "IETF protocol assignments"},
		{"192.0.0.170", "IETF protocol assignments"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"240.0.0.1", "is a reserved address"},
		{"254.255.255.255", "is a reserved address"},
		{"255.255.255.255", "is the broadcast address"},
		{"64:ff9b::7f00:1", "is a NAT64 address of 127.0.0.1, which is a loopback address"},
		{"64:ff9b::a9fe:a9fe", "is a NAT64 address of 169.254.169.254, which is link-local"},
		{"64:ff9b::a00:1", "is a NAT64 address of 10.0.0.1, which is a private address"},
		{"2002:7f00:1::", "is a 6to4 address of 127.0.0.1, which is a loopback address"},
		{"2002:a9fe:a9fe::1", "is a 6to4 address of 169.254.169.254, which is link-local"},
		{"2002:c0a8:101::1", "is a 6to4 address of 192.168.1.1, which is a private address"},
		{"2002::1", "is a 6to4 address of 0.0.0.0, which is an unspecified address"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			ip := netip.MustParseAddr(tt.addr)
			err := CheckAddress(ip)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrRefusedAddress)
			var re *RefusedAddressError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, ip, re.Address)
			assert.Contains(t, re.Reason, tt.reason)
			assert.True(t, strings.HasPrefix(re.Reason, "is "), "reason %q reads after the address", re.Reason)
			assert.Equal(t, ip.String()+" "+re.Reason, err.Error())
		})
	}
}

func TestCheckAddressInvalid(t *testing.T) {
	t.Parallel()
	err := CheckAddress(netip.Addr{})
	require.ErrorIs(t, err, ErrRefusedAddress)
}

func TestRefusedAddressErrorMessage(t *testing.T) {
	t.Parallel()
	err := CheckAddress(netip.MustParseAddr("127.0.0.1"))
	assert.EqualError(t, err, "127.0.0.1 is a loopback address")
	assert.False(t, errors.Is(errors.New("other"), ErrRefusedAddress))
}

// guardServer is an httptest server counting the connections it accepts and the requests it serves.
type guardServer struct {
	*httptest.Server
	conns, requests atomic.Int64
}

func newGuardServer(t *testing.T, h http.HandlerFunc) *guardServer {
	t.Helper()
	s := &guardServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		h(w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func guardOK(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }

func guardPost(t *testing.T, c *http.Client, u string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, u, strings.NewReader("{}"))
	require.NoError(t, err)
	resp, err := c.Do(req)
	if resp != nil {
		t.Cleanup(func() { _ = resp.Body.Close() })
	}
	return resp, err
}

func TestNewClientRefuses(t *testing.T) {
	t.Parallel()
	srv := newGuardServer(t, guardOK)
	_, portStr, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)

	tests := []struct {
		name, url, want string
	}{
		{"loopback IP", srv.URL + "/hook", "is a loopback address"},
		{"localhost hostname", "http://localhost:" + portStr + "/hook", "is a loopback address"},
		{"IPv4-mapped loopback", "http://[::ffff:127.0.0.1]:" + portStr + "/hook", "is a loopback address"},
		{"https loopback", "https://127.0.0.1:" + portStr + "/hook", "is a loopback address"},
		{"cloud metadata", "http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local (cloud metadata lives there)"},
		{"unspecified", "http://0.0.0.0:" + portStr + "/hook", "is an unspecified address"},
	}
	c := NewClient(5*time.Second, false)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			resp, err := guardPost(t, c, tt.url)
			require.Error(t, err)
			assert.Nil(t, resp)
			var ue *url.Error
			require.ErrorAs(t, err, &ue)
			assert.ErrorIs(t, err, ErrRefusedAddress)
			var re *RefusedAddressError
			require.ErrorAs(t, err, &re)
			assert.Contains(t, re.Error(), tt.want)
			// Refused in the dial Control, before connecting: no waiting on a network.
			assert.Less(t, time.Since(start), 2*time.Second)
		})
	}
	t.Cleanup(func() {
		assert.Zero(t, srv.conns.Load(), "the server accepted a connection")
		assert.Zero(t, srv.requests.Load(), "the server received a request")
	})
}

func TestNewClientAllowPrivate(t *testing.T) {
	t.Parallel()
	srv := newGuardServer(t, guardOK)
	c := NewClient(5*time.Second, true)
	resp, err := guardPost(t, c, srv.URL+"/hook")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "ok", string(body))
	assert.EqualValues(t, 1, srv.requests.Load())
}

func TestNewClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	target := newGuardServer(t, guardOK)
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			t.Parallel()
			redirector := newGuardServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/elsewhere", code)
			})
			c := NewClient(5*time.Second, true)
			resp, err := guardPost(t, c, redirector.URL+"/hook")
			require.NoError(t, err)
			assert.Equal(t, code, resp.StatusCode)
			assert.Equal(t, target.URL+"/elsewhere", resp.Header.Get("Location"))
			assert.EqualValues(t, 1, redirector.requests.Load())
		})
	}
	t.Cleanup(func() {
		assert.Zero(t, target.conns.Load(), "the redirect target was connected to")
		assert.Zero(t, target.requests.Load(), "the redirect was followed")
	})
}

func TestNewClientTimeout(t *testing.T) {
	t.Parallel()
	srv := newGuardServer(t, func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client hanging up, which cancels r.Context().
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	c := NewClient(200*time.Millisecond, true)
	start := time.Now()
	resp, err := guardPost(t, c, srv.URL+"/hook")
	elapsed := time.Since(start)
	require.Error(t, err)
	assert.Nil(t, resp)
	var ue *url.Error
	require.ErrorAs(t, err, &ue)
	assert.True(t, ue.Timeout(), "want a timeout, got %v", err)
	assert.NotErrorIs(t, err, ErrRefusedAddress)
	assert.GreaterOrEqual(t, elapsed, 200*time.Millisecond)
	assert.Less(t, elapsed, 3*time.Second)
}

func TestNewClientSettings(t *testing.T) {
	t.Parallel()
	for _, allowPrivate := range []bool{false, true} {
		c := NewClient(7*time.Second, allowPrivate)
		assert.Equal(t, 7*time.Second, c.Timeout)
		require.NotNil(t, c.CheckRedirect)
		assert.ErrorIs(t, c.CheckRedirect(nil, nil), http.ErrUseLastResponse)
		tr, isTransport := c.Transport.(*http.Transport)
		require.True(t, isTransport)
		assert.Nil(t, tr.Proxy, "no proxy from the environment")
		require.NotNil(t, tr.TLSClientConfig)
		assert.EqualValues(t, tls.VersionTLS12, tr.TLSClientConfig.MinVersion)
		assert.True(t, tr.ForceAttemptHTTP2)
		assert.Equal(t, 10*time.Second, tr.TLSHandshakeTimeout)
		assert.Equal(t, 7*time.Second, tr.ResponseHeaderTimeout)
		assert.Equal(t, 4, tr.MaxIdleConnsPerHost)
		assert.Equal(t, 90*time.Second, tr.IdleConnTimeout)
	}
}

func TestRefuseControl(t *testing.T) {
	t.Parallel()
	tests := []struct {
		network, address string
		refused          bool
	}{
		{"tcp4", "8.8.8.8:443", false},
		{"tcp6", "[2606:4700:4700::1111]:443", false},
		{"tcp4", "127.0.0.1:80", true},
		{"tcp6", "[::1]:80", true},
		{"tcp4", "169.254.169.254:80", true},
		{"tcp6", "[fd00:ec2::254]:80", true},
		{"tcp6", "[fe80::1%eth0]:80", true},
		{"udp4", "8.8.8.8:53", true},
		{"tcp4", "not-an-address", true},
	}
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.address, func(t *testing.T) {
			t.Parallel()
			err := refuseControl(tt.network, tt.address, nil)
			if tt.refused {
				assert.ErrorIs(t, err, ErrRefusedAddress)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}
