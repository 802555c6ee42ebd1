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

	"github.com/userhook/userhook"
)

func TestCheckAddressAllowed(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"8.8.8.8",
		"1.1.1.1",
		"93.184.216.34",
		"2606:4700:4700::1111",
		"2001:4860:4860::8888",
		"100.63.255.255",            // just below CGNAT
		"100.128.0.0",               // just above CGNAT
		"172.15.255.255",            // just below 172.16/12
		"172.32.0.0",                // just above 172.16/12
		"198.17.255.255",            // just below benchmarking
		"198.20.0.0",                // just above benchmarking
		"192.0.1.1",                 // just above 192.0.0.0/24
		"223.255.255.255",           // just below multicast
		"169.253.255.255",           // just below link-local
		"192.0.1.255",               // just below TEST-NET-1
		"192.0.3.0",                 // just above TEST-NET-1
		"198.51.99.255",             // just below TEST-NET-2
		"198.51.101.0",              // just above TEST-NET-2
		"203.0.112.255",             // just below TEST-NET-3
		"203.0.114.0",               // just above TEST-NET-3
		"2001:200::1",               // just above 2001::/23
		"2001:db7:ffff::1",          // just below 2001:db8::/32
		"2001:db9::1",               // just above 2001:db8::/32
		"2003::1",                   // just above 2002::/16
		"2000::1",                   // the start of global unicast
		"3ffe:ffff::1",              // below 3fff::/20
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
		// The ranges the hand-rolled list missed (issue 12), and their edges.
		{"192.0.2.0", "is reserved for documentation (TEST-NET-1, 192.0.2.0/24)"},
		{"192.0.2.10", "is reserved for documentation (TEST-NET-1, 192.0.2.0/24)"},
		{"192.0.2.255", "is reserved for documentation (TEST-NET-1, 192.0.2.0/24)"},
		{"198.51.100.0", "is reserved for documentation (TEST-NET-2, 198.51.100.0/24)"},
		{"198.51.100.255", "is reserved for documentation (TEST-NET-2, 198.51.100.0/24)"},
		{"203.0.113.0", "is reserved for documentation (TEST-NET-3, 203.0.113.0/24)"},
		{"203.0.113.255", "is reserved for documentation (TEST-NET-3, 203.0.113.0/24)"},
		{"2001:db8::", "is reserved for documentation (2001:db8::/32)"},
		{"2001:db8::1", "is reserved for documentation (2001:db8::/32)"},
		{"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "is reserved for documentation (2001:db8::/32)"},
		{"3fff::1", "is reserved for documentation (3fff::/20)"},
		{"100::", "is in the discard-only range (100::/64)"},
		{"100::ffff:ffff:ffff:ffff", "is in the discard-only range (100::/64)"},
		{"100:0:0:1::1", "is outside the IPv6 global unicast range (2000::/3)"}, // past 100::/64, still not global
		{"2001::", "is reserved for IETF protocol assignments (2001::/23)"},
		{"2001::1", "is reserved for IETF protocol assignments (2001::/23)"},   // Teredo
		{"2001:2::1", "is reserved for IETF protocol assignments (2001::/23)"}, // benchmarking
		{"2001:1ff:ffff::1", "is reserved for IETF protocol assignments (2001::/23)"},
		{"::2", "is an IPv4-compatible address (::/96, deprecated)"},
		{"::808:808", "is an IPv4-compatible address (::/96, deprecated)"},
		{"::ffff:ffff", "is an IPv4-compatible address (::/96, deprecated)"},
		{"::ffff:0:0", "is an IPv4-mapped address of 0.0.0.0, which is an unspecified address"},
		{"::ffff:8.8.8.8", "is an IPv4-mapped address (::ffff:0:0/96): use the IPv4 address itself"},
		{"::ffff:255.255.255.255", "is an IPv4-mapped address of 255.255.255.255, which is the broadcast address"},
		{"::ffff:192.0.2.1", "is an IPv4-mapped address of 192.0.2.1, which is reserved for documentation"},
		{"64:ff9b:1::", "is reserved for local-use IPv4/IPv6 translation (64:ff9b:1::/48)"},
		{"64:ff9b:1::808:808", "is reserved for local-use IPv4/IPv6 translation (64:ff9b:1::/48)"},
		{"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "is reserved for local-use IPv4/IPv6 translation (64:ff9b:1::/48)"},
		{"fec0::", "is a site-local address (fec0::/10, deprecated)"},
		{"fec0::1", "is a site-local address (fec0::/10, deprecated)"},
		{"feff:ffff::1", "is a site-local address (fec0::/10, deprecated)"},
		// The IPv4-mapped, NAT64 and 6to4 forms of refused and public IPv4 addresses.
		{"::ffff:10.0.0.1", "is an IPv4-mapped address of 10.0.0.1, which is a private address"},
		{"::ffff:100.64.0.1", "is an IPv4-mapped address of 100.64.0.1, which is in the CGNAT"},
		{"64:ff9b::c000:20a", "is a NAT64 address of 192.0.2.10, which is reserved for documentation"},
		{"64:ff9b::808:808", "is a NAT64 address (64:ff9b::/96), allowed only when that prefix is"},
		{"2002:c000:20a::1", "is a 6to4 address of 192.0.2.10, which is reserved for documentation"},
		{"2002:6440:1::1", "is a 6to4 address of 100.64.0.1, which is in the CGNAT"},
		{"2002:808:808::1", "is a 6to4 address (2002::/16, deprecated)"},
		// Outside global unicast (2000::/3), and the other special-purpose ranges of the registry.
		{"fe7f:ffff::1", "is outside the IPv6 global unicast range (2000::/3)"},
		{"fbff:ffff::1", "is outside the IPv6 global unicast range (2000::/3)"},
		{"4000::1", "is outside the IPv6 global unicast range (2000::/3)"},
		{"1fff:ffff::1", "is outside the IPv6 global unicast range (2000::/3)"},
		{"2620:4f:8000::1", "is in 2620:4f:8000::/48, a special-purpose range of the IANA registry"},
		{"192.31.196.1", "is in 192.31.196.0/24, a special-purpose range of the IANA registry"},
		{"192.52.193.1", "is in 192.52.193.0/24, a special-purpose range of the IANA registry"},
		{"192.175.48.1", "is in 192.175.48.0/24, a special-purpose range of the IANA registry"},
		{"192.88.99.1", "is in the deprecated 6to4 relay anycast range (192.88.99.0/24)"},
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
	c := NewClient(5*time.Second, Guard{})
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
	c := NewClient(5*time.Second, Guard{AllowPrivate: true})
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
			c := NewClient(5*time.Second, Guard{AllowPrivate: true})
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
	c := NewClient(200*time.Millisecond, Guard{AllowPrivate: true})
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
	for _, g := range []Guard{{}, {AllowPrivate: true}, {Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}} {
		c := NewClient(7*time.Second, g)
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
			err := Guard{}.control(tt.network, tt.address, nil)
			if tt.refused {
				assert.ErrorIs(t, err, ErrRefusedAddress)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}

func TestGuardAllow(t *testing.T) {
	t.Parallel()
	prefixes := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tests := []struct {
		name    string
		guard   Guard
		allowed []string
		refused []string
	}{
		{
			name:  "allow list",
			guard: Guard{Allow: prefixes("10.1.0.0/16", "192.0.2.0/28", "2001:db8:1::/48", "fd12::/16")},
			allowed: []string{"10.1.0.1", "10.1.255.255", "192.0.2.1", "192.0.2.15", "2001:db8:1::1", "fd12::1",
				"::ffff:10.1.2.3", "8.8.8.8", "2606:4700:4700::1111"},
			refused: []string{"10.2.0.1", "10.0.255.255", "192.0.2.16", "2001:db8:2::1", "fd13::1", "127.0.0.1", "::1",
				"169.254.169.254", "192.168.1.1"},
		},
		{
			name:  "private",
			guard: Guard{AllowPrivate: true},
			allowed: []string{"127.0.0.1", "127.1.2.3", "::1", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1",
				"fc00::1", "fd12:3456::1", "::ffff:127.0.0.1", "::ffff:192.168.1.1", "8.8.8.8"},
			refused: []string{"169.254.169.254", "fe80::1", "fd00:ec2::254", "100.100.100.200", "100.64.0.1", "0.0.0.0",
				"::", "192.0.2.1", "2001:db8::1", "224.0.0.1", "ff02::1", "64:ff9b::7f00:1", "2002:7f00:1::1"},
		},
		{
			name:    "metadata listed explicitly",
			guard:   Guard{AllowPrivate: true, Allow: prefixes("fd00:ec2::254/128", "169.254.169.254/32")},
			allowed: []string{"fd00:ec2::254", "169.254.169.254"},
			refused: []string{"169.254.169.253", "fe80::1"},
		},
		{
			name:    "NAT64 allowed keeps refusing the IPv4 addresses it embeds",
			guard:   Guard{Allow: prefixes("64:ff9b::/96")},
			allowed: []string{"64:ff9b::808:808", "64:ff9b::101:101"},
			refused: []string{"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "64:ff9b::c000:20a", "64:ff9b:1::808:808"},
		},
		{
			name:    "NAT64 of an allowed IPv4 address",
			guard:   Guard{Allow: prefixes("64:ff9b::/96", "10.0.0.0/8")},
			allowed: []string{"64:ff9b::a00:1", "10.0.0.1"},
			refused: []string{"64:ff9b::7f00:1"},
		},
		{
			name:    "an allowed IPv4 address is not its NAT64 form",
			guard:   Guard{Allow: prefixes("10.0.0.0/8")},
			allowed: []string{"10.0.0.1", "::ffff:10.0.0.1"},
			refused: []string{"64:ff9b::a00:1", "2002:a00:1::1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, s := range tt.allowed {
				assert.NoError(t, tt.guard.Check(netip.MustParseAddr(s)), "%s is allowed", s)
			}
			for _, s := range tt.refused {
				err := tt.guard.Check(netip.MustParseAddr(s))
				assert.ErrorIs(t, err, ErrRefusedAddress, "%s is refused", s)
			}
		})
	}
	assert.NoError(t, CheckAddress(netip.MustParseAddr("8.8.8.8")))
	assert.Error(t, CheckAddress(netip.MustParseAddr("10.1.0.1")), "the zero Guard allows nothing more")
}

func TestNewClientAllowCIDR(t *testing.T) {
	t.Parallel()
	srv := newGuardServer(t, guardOK)
	c := NewClient(5*time.Second, Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	resp, err := guardPost(t, c, srv.URL+"/hook")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	other := NewClient(5*time.Second, Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	_, err = guardPost(t, other, "http://localhost:"+port+"/hook")
	require.ErrorIs(t, err, ErrRefusedAddress, "an allow list opens what it lists only")
	assert.Contains(t, err.Error(), "is a loopback address")
	assert.EqualValues(t, 1, srv.requests.Load())
}

func TestValidateURL(t *testing.T) {
	t.Parallel()
	base := Webhook{Name: "n", Events: []string{All}, ContentType: "application/json"}
	tests := []struct {
		url   string
		guard Guard
		want  string // "" when valid
	}{
		{"https://example.com/hook", Guard{}, ""},
		{"https://8.8.8.8/hook", Guard{}, ""},
		{"https://[2606:4700:4700::1111]:8443/hook", Guard{}, ""},
		{"https://localhost/hook", Guard{}, ""}, // a name: judged when a delivery connects
		{"http://example.com/hook", Guard{}, "should be a secure URL with HTTPS"},
		{"http://example.com/hook", Guard{Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, "should be a secure URL with HTTPS"},
		{"http://example.com/hook", Guard{AllowPrivate: true}, ""},
		{"https://192.0.2.10/hook", Guard{}, "192.0.2.10 is reserved for documentation (TEST-NET-1, 192.0.2.0/24)"},
		{"https://[2001:db8::1]/", Guard{}, "2001:db8::1 is reserved for documentation (2001:db8::/32)"},
		{"https://127.0.0.1:8443/", Guard{}, "127.0.0.1 is a loopback address"},
		{"https://[fe80::1%25eth0]/", Guard{}, "fe80::1%eth0 is link-local"},
		{"https://192.0.2.10/hook", Guard{Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, ""},
		{"https://127.0.0.1/hook", Guard{AllowPrivate: true}, ""},
		{"http://127.0.0.1:9/hook", Guard{AllowPrivate: true}, ""},
		{"https://169.254.169.254/", Guard{AllowPrivate: true}, "169.254.169.254 is link-local"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			w := base
			w.URL = tt.url
			err := Validate(w, tt.guard)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, userhook.ErrInvalid)
			var fe userhook.FieldErrors
			require.ErrorAs(t, err, &fe)
			require.Len(t, fe, 1)
			assert.Equal(t, "url", fe[0].Field)
			assert.Contains(t, fe[0].Message, tt.want)
		})
	}
}
