package delivery

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrRefusedAddress is what a delivery gets when it would connect to an address deliveries must never reach
// (loopback, private, link-local, cloud metadata, ...). Match it with errors.Is; the error itself is a
// *RefusedAddressError naming the address and why.
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

// The refused ranges net/netip has no predicate for. Order matters where ranges nest: the broadcast address
// lies inside 240.0.0.0/4, the AWS IPv6 metadata address inside fc00::/7.
var refusedPrefixes = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "is in 0.0.0.0/8 (\"this network\")"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "is the AWS IPv6 cloud metadata address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "is in the CGNAT shared address space (100.64.0.0/10)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "is reserved for IETF protocol assignments (192.0.0.0/24)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "is reserved for benchmarking (198.18.0.0/15)"},
	{netip.MustParsePrefix("255.255.255.255/32"), "is the broadcast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "is a reserved address (240.0.0.0/4)"},
}

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// CheckAddress returns nil when ip may be connected to, or a *RefusedAddressError saying why not. An
// IPv4-mapped IPv6 address is judged as the IPv4 address it maps, and a NAT64 (64:ff9b::/96) or 6to4
// (2002::/16) address as the IPv4 address it embeds.
func CheckAddress(ip netip.Addr) error {
	if reason := refusal(ip); reason != "" {
		return &RefusedAddressError{Address: ip, Reason: reason}
	}
	return nil
}

// refusal is why ip is refused, "" when it is not.
func refusal(ip netip.Addr) string {
	if !ip.IsValid() {
		return "is not a valid IP address"
	}
	// A zoned address never matches a netip.Prefix, so judge it without its zone.
	ip = ip.Unmap().WithZone("")
	switch {
	case ip.IsUnspecified():
		return "is an unspecified address"
	case ip.IsLoopback():
		return "is a loopback address"
	}
	// Before IsPrivate: the AWS IPv6 metadata address is in fc00::/7 and deserves its own reason.
	for _, p := range refusedPrefixes {
		if p.prefix.Contains(ip) {
			return p.reason
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
	if ip.Is6() {
		b := ip.As16()
		if nat64Prefix.Contains(ip) {
			v4 := netip.AddrFrom4([4]byte(b[12:16]))
			if r := refusal(v4); r != "" {
				return fmt.Sprintf("is a NAT64 address of %s, which %s", v4, r)
			}
		}
		if sixToFour.Contains(ip) {
			v4 := netip.AddrFrom4([4]byte(b[2:6]))
			if r := refusal(v4); r != "" {
				return fmt.Sprintf("is a 6to4 address of %s, which %s", v4, r)
			}
		}
	}
	return ""
}

// NewClient returns the HTTP client deliveries are sent with: timeout bounds each request (including reading
// the body), redirects are never followed (the 3xx response itself is returned), no proxy is taken from the
// environment, and unless allowPrivate, every connection attempt is checked with CheckAddress on the resolved
// address right before it connects, so neither a hostname resolving to a refused address nor DNS rebinding
// gets through. A refused connection fails the request with an error matching ErrRefusedAddress.
func NewClient(timeout time.Duration, allowPrivate bool) *http.Client {
	dialer := &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
	}
	if !allowPrivate {
		dialer.Control = refuseControl
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

// refuseControl is the dialer's Control: it runs for every connection attempt, after DNS resolution and
// before connect, with the literal IP and port about to be connected to.
func refuseControl(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("%w: network %q is not allowed", ErrRefusedAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse the address %q: %v", ErrRefusedAddress, address, err)
	}
	return CheckAddress(ap.Addr())
}
