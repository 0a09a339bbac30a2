package smart

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr returns the address the Launcher's per-address limit counts a
// request against. It is the connection's peer (RemoteAddr), unless that
// peer is one of trusted: then X-Forwarded-For is read from the right, over
// trusted proxies, and the first address that is not one is the client. A
// header that does not parse stops the walk at the last address known good,
// so a forged or broken header never yields more than the proxy's own
// address. IPv6 clients are counted by /64 (one subscriber's usual
// allocation), so one host cannot dodge the limit by rotating addresses
// within its prefix.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	ip, ok := parseHostAddr(r.RemoteAddr)
	if !ok {
		return "unknown"
	}
	if isTrusted(ip, trusted) {
		var hops []string
		for _, v := range r.Header.Values("X-Forwarded-For") {
			hops = append(hops, strings.Split(v, ",")...)
		}
		for i := len(hops) - 1; i >= 0; i-- {
			hop, ok := parseHostAddr(strings.TrimSpace(hops[i]))
			if !ok {
				break
			}
			ip = hop
			if !isTrusted(ip, trusted) {
				break
			}
		}
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// parseHostAddr parses an address with or without a port (RemoteAddr has
// one; X-Forwarded-For entries usually do not, some proxies add it).
func parseHostAddr(s string) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap().WithZone(""), true
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
