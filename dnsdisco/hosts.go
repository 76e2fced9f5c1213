package dnsdisco

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"strings"
	"time"
)

// maxHostsFileSize bounds how much of a hosts file is read.
const maxHostsFileSize = 16 << 20

// hostsTable maps a lower-case host name (no trailing dot) to its addresses
// in file order.
type hostsTable map[string][]netip.Addr

// parseHosts parses the hosts(5) format: an address, then one or more
// names; '#' starts a comment. Lines with an unparsable address are
// skipped, as the C library does. Names are converted as lookups are
// (IDNA Lookup profile, lower case, no trailing dot) and invalid ones
// skipped; IPv4-mapped IPv6 addresses are unmapped; zones are dropped
// (a zoned address cannot be dialled for s2s).
func parseHosts(data []byte) hostsTable {
	t := hostsTable{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil || a.Zone() != "" {
			continue
		}
		a = a.Unmap()
		for _, n := range f[1:] {
			// Names are stored the way lookups ask for them: validated
			// A-labels without the trailing dot. A name that is not a
			// valid host name ("a..b", "x_y") could never be looked up.
			n, err := toASCII(n)
			if err != nil {
				continue
			}
			if !containsAddr(t[n], a) {
				t[n] = append(t[n], a)
			}
		}
	}
	return t
}

func containsAddr(s []netip.Addr, a netip.Addr) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}

// hostsRecheck is how long the hosts file is trusted before it is looked
// at again; the Go standard resolver uses the same 5 seconds. Without it
// every cached lookup would cost a stat(2) per host.
const hostsRecheck = 5 * time.Second

// hostsState caches the parsed hosts file and the stat data it came from.
type hostsState struct {
	path    string
	checked time.Time // when the file was last stat'ed (Resolver clock)
	mtime   time.Time
	size    int64
	ok      bool // a file was read
	table   hostsTable
}

// hostsLookup returns the hosts-file addresses for host (A-label, lower
// case), IPv6 first then IPv4 like DNS answers. The file is re-read when
// its path, modification time or size changes, checked at most every
// hostsRecheck. A missing or unreadable file means no entries. Caller must
// not hold r.mu.
func (r *Resolver) hostsLookup(host string) []netip.Addr {
	path := r.HostsFile
	if path == "" {
		path = "/etc/hosts"
	}
	now := r.clock()
	r.mu.Lock()
	h := &r.hosts
	fresh := h.path == path && !h.checked.IsZero() && !now.Before(h.checked) && now.Sub(h.checked) < hostsRecheck
	r.mu.Unlock()
	if !fresh {
		fi, err := os.Stat(path)
		r.mu.Lock()
		switch {
		case err != nil || !fi.Mode().IsRegular():
			h.path, h.ok, h.table = path, false, nil
		case !h.ok || h.path != path || !h.mtime.Equal(fi.ModTime()) || h.size != fi.Size():
			h.path, h.mtime, h.size, h.ok, h.table = path, fi.ModTime(), fi.Size(), true, nil
			if fi.Size() <= maxHostsFileSize {
				if data, err := os.ReadFile(path); err == nil {
					h.table = parseHosts(data)
				}
			}
		}
		h.checked = now
		r.mu.Unlock()
	}

	r.mu.Lock()
	addrs := h.table[host]
	r.mu.Unlock()
	if len(addrs) == 0 {
		return nil
	}
	// The table is never modified after parsing, so it is safe to read
	// its slices without the lock.
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a.Is6() {
			out = append(out, a)
		}
	}
	for _, a := range addrs {
		if a.Is4() {
			out = append(out, a)
		}
	}
	return out
}
