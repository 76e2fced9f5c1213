package policy

import (
	"fmt"
	"slices"
	"strings"
)

// findPartner returns the index of the partner with main domain domain
// (any form), or -1.
func findPartner(c *Config, domain string) int {
	d := normalizeDomain(domain)
	for i := range c.Partners {
		if c.Partners[i].Domain == d {
			return i
		}
	}
	return -1
}

// owner returns the main domain of the partner, other than the one at
// index skip, that has the normalized domain d as its main or additional
// domain, or "".
func owner(c *Config, d string, skip int) string {
	for i := range c.Partners {
		if i == skip {
			continue
		}
		pt := &c.Partners[i]
		if pt.Domain == d || slices.Contains(pt.AdditionalDomains, d) {
			return pt.Domain
		}
	}
	return ""
}

// checkOwners fails when one of pt's domains belongs to a partner other
// than the one at index skip (REFERENCE §5.1 #6).
func checkOwners(c *Config, pt *Partner, skip int) error {
	for _, d := range append([]string{pt.Domain}, pt.AdditionalDomains...) {
		if o := owner(c, d, skip); o != "" {
			return fmt.Errorf("policy: domain %q belongs to partner %q: %w", d, o, ErrExists)
		}
	}
	return nil
}

func addPartner(pt Partner) Edit {
	return func(c *Config) error {
		normalizePartner(&pt)
		if pt.Domain == "" {
			return &FieldError{Field: "domain", Reason: "required"}
		}
		if findPartner(c, pt.Domain) >= 0 {
			// REFERENCE §5.1 #5.
			return fmt.Errorf("policy: partner %q: %w", pt.Domain, ErrExists)
		}
		if err := checkOwners(c, &pt, -1); err != nil {
			return err
		}
		c.Partners = append(c.Partners, pt.Clone())
		return nil
	}
}

func setPartner(pt Partner) Edit {
	return func(c *Config) error {
		normalizePartner(&pt)
		i := findPartner(c, pt.Domain)
		if i < 0 {
			return fmt.Errorf("policy: partner %q: %w", pt.Domain, ErrNotFound)
		}
		if err := checkOwners(c, &pt, i); err != nil {
			return err
		}
		c.Partners[i] = pt.Clone()
		return nil
	}
}

func removePartner(domain string) Edit {
	return func(c *Config) error {
		i := findPartner(c, domain)
		if i < 0 {
			return fmt.Errorf("policy: partner %q: %w", normalizeDomain(domain), ErrNotFound)
		}
		c.Partners = slices.Delete(c.Partners, i, i+1)
		return nil
	}
}

func editDomains(domain string, e ListEdit) Edit {
	return func(c *Config) error {
		i := findPartner(c, domain)
		if i < 0 {
			return fmt.Errorf("policy: partner %q: %w", normalizeDomain(domain), ErrNotFound)
		}
		pt := &c.Partners[i]
		list := slices.Clone(pt.AdditionalDomains)
		if e.Clear || e.Replace != nil {
			list = nil
			for _, d := range e.Replace {
				list = append(list, normalizeDomain(d))
			}
		}
		for _, d := range e.Remove {
			n := normalizeDomain(d)
			j := slices.Index(list, n)
			if j < 0 {
				return fmt.Errorf("policy: partner %q: additional domain %q: %w", pt.Domain, d, ErrNotFound)
			}
			list = slices.Delete(list, j, j+1)
		}
		for _, d := range e.Add {
			n := normalizeDomain(d)
			if n == pt.Domain || slices.Contains(list, n) {
				return fmt.Errorf("policy: partner %q: domain %q: %w", pt.Domain, d, ErrExists)
			}
			list = append(list, n)
		}
		next := pt.Clone()
		next.AdditionalDomains = list
		if err := checkOwners(c, &next, i); err != nil {
			return err
		}
		pt.AdditionalDomains = list
		return nil
	}
}

func setGateway(g Gateway) Edit {
	return func(c *Config) error {
		if g.DialbackSecret.Len() == 0 {
			g.DialbackSecret = c.Gateway.DialbackSecret
		}
		c.Gateway = g.clone()
		return nil
	}
}

func block(domains []string) Edit {
	return func(c *Config) error {
		for _, d := range domains {
			n := normalizeBlocked(d)
			if !slices.Contains(c.Gateway.Blocked, n) {
				c.Gateway.Blocked = append(c.Gateway.Blocked, n)
			}
		}
		return nil
	}
}

func unblock(domains []string) Edit {
	return func(c *Config) error {
		for _, d := range domains {
			n := normalizeBlocked(d)
			j := slices.Index(c.Gateway.Blocked, n)
			if j < 0 {
				return fmt.Errorf("policy: blocked domain %q: %w", d, ErrNotFound)
			}
			c.Gateway.Blocked = slices.Delete(c.Gateway.Blocked, j, j+1)
		}
		return nil
	}
}

// findPolicy returns the index of the access policy name, or -1.
func findPolicy(c *Config, name string) int {
	k := policyKey(name)
	for i := range c.Policies {
		if policyKey(c.Policies[i].Name) == k {
			return i
		}
	}
	return -1
}

func setAccessPolicy(ap AccessPolicy) Edit {
	return func(c *Config) error {
		ap.Name = normalizePolicyName(ap.Name)
		if strings.TrimSpace(ap.Name) == "" {
			return &FieldError{Field: "name", Reason: "required"}
		}
		if i := findPolicy(c, ap.Name); i >= 0 {
			c.Policies[i] = ap
			return nil
		}
		c.Policies = append(c.Policies, ap)
		return nil
	}
}

func removeAccessPolicy(name string) Edit {
	return func(c *Config) error {
		n := normalizePolicyName(name)
		i := findPolicy(c, n)
		if i < 0 {
			if n == GlobalPolicy {
				// The global policy always exists: removing it resets
				// it to the defaults (REFERENCE §2.3, §5.6 #60).
				return nil
			}
			return fmt.Errorf("policy: access policy %q: %w", name, ErrNotFound)
		}
		c.Policies = slices.Delete(c.Policies, i, i+1)
		return nil
	}
}
