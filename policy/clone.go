package policy

import "slices"

// Clone returns a deep copy of c (nil for nil).
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	d := &Config{Gateway: c.Gateway.clone()}
	if c.Partners != nil {
		d.Partners = make([]Partner, len(c.Partners))
		for i := range c.Partners {
			d.Partners[i] = c.Partners[i].Clone()
		}
	}
	d.Policies = slices.Clone(c.Policies)
	return d
}

// Clone returns a deep copy of pt.
func (pt Partner) Clone() Partner {
	pt.AdditionalDomains = slices.Clone(pt.AdditionalDomains)
	return pt
}

// clone returns a deep copy of g (the secret's bytes are shared: a Secret
// is never modified in place).
func (g Gateway) clone() Gateway {
	g.Blocked = slices.Clone(g.Blocked)
	g.DefaultPartner = g.DefaultPartner.Clone()
	return g
}

// clone returns a deep copy of e.
func (e ListEdit) clone() ListEdit {
	e.Replace = slices.Clone(e.Replace)
	e.Remove = slices.Clone(e.Remove)
	e.Add = slices.Clone(e.Add)
	return e
}

// withDefaults returns g with every zero limit, duration and rate replaced
// by its default; negative values stay negative.
func (g Gateway) withDefaults() Gateway {
	g = g.clone()
	if g.ConnectionLimit == 0 {
		g.ConnectionLimit = DefaultConnectionLimit
	}
	if g.PartnerConnectionLimit == 0 {
		g.PartnerConnectionLimit = DefaultPartnerConnectionLimit
	}
	if g.KeepAliveInterval == 0 {
		g.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if g.StreamEstablishmentTimeout == 0 {
		g.StreamEstablishmentTimeout = DefaultStreamEstablishmentTimeout
	}
	if g.StreamInactivityTimeout == 0 {
		g.StreamInactivityTimeout = DefaultStreamInactivityTimeout
	}
	if g.SubscriptionRefreshInterval == 0 {
		g.SubscriptionRefreshInterval = DefaultSubscriptionRefreshInterval
	}
	if g.MaxStanzaBytes == 0 {
		g.MaxStanzaBytes = DefaultMaxStanzaBytes
	}
	if g.StanzasPerSecond == 0 {
		g.StanzasPerSecond = DefaultStanzasPerSecond
	}
	return g
}
