package delivery

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// ErrRefusedAddress is what a delivery gets when it would connect to an address deliveries must never reach
// (loopback, private, link-local, cloud metadata, documentation, ...). Match it with errors.Is; the error
// itself is a *RefusedAddressError naming the address and why.
var ErrRefusedAddress = errors.New("delivery: refused address")

// RefusedAddressError names the address a delivery was refused to connect to and why, e.g.
// "127.0.0.1 is a loopback address". It matches ErrRefusedAddress with errors.Is.
type RefusedAddressError struct {
	Address netip.Addr
	// Reason completes a sentence starting with the address: "is a loopback address".
	Reason string
}

// Error says which address was refused and why.
func (e *RefusedAddressError) Error() string {
	return e.Address.String() + " " + e.Reason
}

// Is makes errors.Is(err, ErrRefusedAddress) true.
func (e *RefusedAddressError) Is(target error) bool {
	return target == ErrRefusedAddress
}

// PrivatePrefixes are the ranges Guard.AllowPrivate opens, for local development and tests: loopback
// (127.0.0.0/8, ::1/128), the RFC 1918 private networks (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16) and IPv6
// unique local addresses (fc00::/7), where receivers on a developer's machine, a Docker network or a
// company network live. Deliberately not among them, because cloud metadata services answer there:
// link-local (169.254.0.0/16, fe80::/10), the CGNAT shared space 100.64.0.0/10 (Alibaba Cloud's metadata is
// 100.100.100.200) and, inside fc00::/7, the AWS IPv6 metadata address fd00:ec2::254. Whoever needs one of
// those lists it in Guard.Allow (USERHOOK_WEBHOOK_ALLOW_CIDRS).
var PrivatePrefixes = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
}

// notPrivate are the addresses inside PrivatePrefixes that AllowPrivate still refuses.
var notPrivate = []netip.Prefix{netip.MustParsePrefix("fd00:ec2::254/128")}

// registry is the verdict: code.dny.dev/ssrf refuses every IPv4 range of the IANA special-purpose registry
// and every IPv6 address outside global unicast (2000::/3) or in a special-purpose range within it. Ports
// are not its business here: a receiver may listen on any.
var registry = ssrf.New(ssrf.WithAnyPort())

// Guard decides which addresses deliveries may connect to: every globally reachable address, and besides
// those only what it allows. The zero Guard allows nothing else and accepts https:// webhook URLs only.
type Guard struct {
	// AllowPrivate allows PrivatePrefixes, and http:// webhook URLs (local receivers).
	AllowPrivate bool
	// Allow lists further prefixes deliveries may reach (USERHOOK_WEBHOOK_ALLOW_CIDRS).
	Allow []netip.Prefix
}

// CheckAddress returns nil when ip may be connected to, or a *RefusedAddressError saying why not; it is the
// zero Guard's Check.
func CheckAddress(ip netip.Addr) error { return Guard{}.Check(ip) }

// Check returns nil when ip may be connected to, or a *RefusedAddressError saying why not. An IPv4-mapped
// (::ffff:0:0/96), NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address of a refused IPv4 address is refused
// whatever the allowed prefixes, and one of an allowed IPv4 address is still judged as the IPv6 address it
// is: the registry refuses all three forms unless their prefix is allowed (on an IPv6-only network behind
// DNS64+NAT64, allow 64:ff9b::/96).
func (g Guard) Check(ip netip.Addr) error {
	if reason := g.refusal(ip); reason != "" {
		return &RefusedAddressError{Address: ip, Reason: reason}
	}
	return nil
}

// refusal is why ip is refused, "" when it is not.
func (g Guard) refusal(ip netip.Addr) string {
	if !ip.IsValid() {
		return "is not a valid IP address"
	}
	// A zoned address never matches a netip.Prefix, so judge it without its zone.
	ip = ip.WithZone("")
	if v4, form := embeddedIPv4(ip); form != "" {
		if r := g.refusal(v4); r != "" {
			return fmt.Sprintf("is %s of %s, which %s", form, v4, r)
		}
	}
	if g.allowed(ip) {
		return ""
	}
	if registry.SafeAddr(ip) == nil {
		return ""
	}
	return reason(ip)
}

func (g Guard) allowed(ip netip.Addr) bool {
	if containedIn(g.Allow, ip) {
		return true
	}
	return g.AllowPrivate && containedIn(PrivatePrefixes, ip) && !containedIn(notPrivate, ip)
}

func containedIn(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(ip) || ip.Is4In6() && p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

var (
	mappedPrefix = netip.MustParsePrefix("::ffff:0:0/96")
	nat64Prefix  = ssrf.IPv6NAT64Prefix
	sixToFour    = netip.MustParsePrefix("2002::/16")
)

// embeddedIPv4 is the IPv4 address an IPv4-mapped, NAT64 or 6to4 address reaches, and which form it is.
func embeddedIPv4(ip netip.Addr) (netip.Addr, string) {
	if !ip.Is6() {
		return netip.Addr{}, ""
	}
	b := ip.As16()
	switch {
	case mappedPrefix.Contains(ip):
		return ip.Unmap(), "an IPv4-mapped address"
	case nat64Prefix.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), "a NAT64 address"
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), "a 6to4 address"
	}
	return netip.Addr{}, ""
}

// reasons name the refused ranges for people; the registry decides. Nested ranges come first: the
// broadcast address lies inside 240.0.0.0/4, the AWS IPv6 metadata address inside fc00::/7.
var reasons = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "is in 0.0.0.0/8 (\"this network\")"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "is the AWS IPv6 cloud metadata address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "is in the CGNAT shared address space (100.64.0.0/10)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "is reserved for IETF protocol assignments (192.0.0.0/24)"},
	{netip.MustParsePrefix("192.0.2.0/24"), "is reserved for documentation (TEST-NET-1, 192.0.2.0/24)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "is reserved for documentation (TEST-NET-2, 198.51.100.0/24)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "is reserved for documentation (TEST-NET-3, 203.0.113.0/24)"},
	{netip.MustParsePrefix("192.88.99.0/24"), "is in the deprecated 6to4 relay anycast range (192.88.99.0/24)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "is reserved for benchmarking (198.18.0.0/15)"},
	{netip.MustParsePrefix("255.255.255.255/32"), "is the broadcast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "is a reserved address (240.0.0.0/4)"},
	{netip.MustParsePrefix("2001:db8::/32"), "is reserved for documentation (2001:db8::/32)"},
	{netip.MustParsePrefix("3fff::/20"), "is reserved for documentation (3fff::/20)"},
	{netip.MustParsePrefix("2001::/23"), "is reserved for IETF protocol assignments (2001::/23)"},
	{netip.MustParsePrefix("100::/64"), "is in the discard-only range (100::/64)"},
	{netip.MustParsePrefix("64:ff9b::/96"), "is a NAT64 address (64:ff9b::/96), allowed only when that prefix is"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "is reserved for local-use IPv4/IPv6 translation (64:ff9b:1::/48)"},
	{netip.MustParsePrefix("2002::/16"), "is a 6to4 address (2002::/16, deprecated)"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "is an IPv4-mapped address (::ffff:0:0/96): use the IPv4 address itself"},
	{netip.MustParsePrefix("fec0::/10"), "is a site-local address (fec0::/10, deprecated)"},
	{netip.MustParsePrefix("::/96"), "is an IPv4-compatible address (::/96, deprecated)"},
}

// registryPrefixes are the special-purpose ranges the registry refuses, to name one no reason above names.
var registryPrefixes = slices.Concat(ssrf.IPv4DeniedPrefixes, ssrf.IPv6DeniedPrefixes)

// reason says why the registry refused ip.
func reason(ip netip.Addr) string {
	switch {
	case ip.IsUnspecified():
		return "is an unspecified address"
	case ip.IsLoopback():
		return "is a loopback address"
	}
	for _, r := range reasons {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	switch {
	case ip.IsPrivate():
		return "is a private address"
	case ip.IsLinkLocalUnicast():
		return "is link-local (cloud metadata lives there)"
	case ip.IsLinkLocalMulticast():
		return "is a link-local multicast address"
	case ip.IsMulticast():
		return "is a multicast address"
	}
	for _, p := range registryPrefixes {
		if p.Contains(ip) {
			return fmt.Sprintf("is in %s, a special-purpose range of the IANA registry", p)
		}
	}
	if ip.Is6() && !ssrf.IPv6GlobalUnicast.Contains(ip) {
		return "is outside the IPv6 global unicast range (2000::/3)"
	}
	return "is not a globally reachable address"
}

// NewClient returns the HTTP client deliveries are sent with: timeout bounds each request (including reading
// the body), redirects are never followed (the 3xx response itself is returned), no proxy is taken from the
// environment, and every connection attempt is checked with g on the resolved address right before it
// connects, so neither a hostname resolving to a refused address nor DNS rebinding gets through. A refused
// connection fails the request with an error matching ErrRefusedAddress.
func NewClient(timeout time.Duration, g Guard) *http.Client {
	dialer := &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control:   g.control,
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: 1 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// control is the dialer's Control: it runs for every connection attempt, after DNS resolution and before
// connect, with the literal IP and port about to be connected to.
func (g Guard) control(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("%w: network %q is not allowed", ErrRefusedAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse the address %q: %v", ErrRefusedAddress, address, err)
	}
	return g.Check(ap.Addr())
}
