package fhirapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// errPrivateEndpoint refuses a notification to an address inside the
// host's networks.
var errPrivateEndpoint = errors.New("the endpoint's address is loopback, private or link-local")

// publicNotifyClient is the default client of Subscription notifications:
// an app names the endpoint, so without a guard any token holder could make
// ehrgate post to the hospital's internal services (server-side request
// forgery). It refuses to connect to loopback, private, link-local,
// multicast and unspecified addresses, checked on the address actually
// dialed (after DNS, so a name that resolves inward is refused too), and
// follows no redirects. Sites whose apps listen on internal addresses set
// Options.AllowPrivateEndpoints.
func publicNotifyClient() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("notification endpoint %q: %w", address, err)
		}
		if !publicAddr(ap.Addr()) {
			return errPrivateEndpoint
		}
		return nil
	}}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a proxy would dial on the client's behalf, unchecked
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// publicAddr reports whether a is a global unicast address outside the
// private ranges (RFC 1918, RFC 4193, and 100.64.0.0/10 shared space).
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	return !netip.MustParsePrefix("100.64.0.0/10").Contains(a)
}
