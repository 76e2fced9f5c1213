package translate

import (
	"fmt"
	"strconv"
)

// PresenceTable is the default PresenceMapper (REFERENCE §4.5), and a
// table a caller can change row by row. Its round trip is stable: for
// every Availability a, ToXMPP(FromXMPP(ToXMPP(a))) == ToXMPP(a) (with an
// empty note; Stable checks a changed table).
//
// The zero value is the default table, the same as NewPresenceTable:
//
//	Host → XMPP                          XMPP → host
//	Available     no <show/>             no <show/>            Available
//	Idle          away, label "Idle"     chat                  Available
//	Busy          dnd, label "Busy"      away                  Away
//	DoNotDisturb  dnd                    xa                    Away
//	BeRightBack   away, label            dnd                   DoNotDisturb
//	              "Be right back"        type='unavailable'    Offline
//	Away          xa
//	Offline       type='unavailable'
//
// The status text sent is the note when the note may be shared and is not
// empty, else the state's generic label ("" for none). Coming back, a
// status that is exactly the label of a state with that <show/> selects
// that state (dnd + "Busy" is Busy, away + "Be right back" is
// BeRightBack, away + "Idle" is Idle) and is not a note; any other status
// is the note. Idle carries a label, unlike REFERENCE §4.5, because away
// alone comes back as Away, which goes out as xa: without the label Idle
// would not be stable (Decode also reads XEP-0319 idle as Idle, see
// Decode).
//
// Configure a table (SetToXMPP, SetFromXMPP) before it is used: its
// methods may then be called from any goroutine, but changing a table in
// use is a data race. Clone it to derive another.
type PresenceTable struct {
	to   [Offline + 1]toRow // by Availability; Unknown unused
	from [showCount]fromRow // by showIndex
}

// toRow is one host → XMPP row; set is false for the default.
type toRow struct {
	set   bool
	show  Show
	label string
}

// fromRow is one XMPP → host row (by <show/>); set is false for the
// default.
type fromRow struct {
	set bool
	a   Availability
}

// showCount is the number of Show values, ShowNone included.
const showCount = 5

// showIndex returns the index of s in PresenceTable.from, or -1 for a value
// RFC 6121 §4.7.2.1 does not define.
func showIndex(s Show) int {
	switch s {
	case ShowNone:
		return 0
	case ShowChat:
		return 1
	case ShowAway:
		return 2
	case ShowXA:
		return 3
	case ShowDND:
		return 4
	}
	return -1
}

// defaultTo is the host → XMPP column of REFERENCE §4.5.
func defaultTo(a Availability) toRow {
	switch a {
	case Idle:
		return toRow{show: ShowAway, label: "Idle"}
	case Busy:
		return toRow{show: ShowDND, label: "Busy"}
	case DoNotDisturb:
		return toRow{show: ShowDND}
	case BeRightBack:
		return toRow{show: ShowAway, label: "Be right back"}
	case Away:
		return toRow{show: ShowXA}
	}
	return toRow{} // Available: no <show/>; Offline: unavailable
}

// defaultFrom is the XMPP → host column of REFERENCE §4.5.
func defaultFrom(s Show) Availability {
	switch s {
	case ShowAway, ShowXA:
		return Away
	case ShowDND:
		return DoNotDisturb
	}
	return Available // no <show/>, chat
}

// NewPresenceTable returns the default table of REFERENCE §4.5 (see
// PresenceTable), ready to use or to change.
func NewPresenceTable() *PresenceTable { return new(PresenceTable) }

// toRow returns the row for a (valid: Available..Offline).
func (t *PresenceTable) toRow(a Availability) toRow {
	if t != nil && t.to[a].set {
		return t.to[a]
	}
	return defaultTo(a)
}

// fromShow returns the availability for show (valid).
func (t *PresenceTable) fromShow(s Show) Availability {
	i := showIndex(s)
	if t != nil && t.from[i].set {
		return t.from[i].a
	}
	return defaultFrom(s)
}

// ToXMPP implements PresenceMapper. Offline is unavailable; every other
// known state is an available presence with the row's <show/>. The status
// is note when shareNote and note is not empty, else the row's label.
// Unknown, and a value out of range, give an unavailable presence with no
// status (Encode refuses them before asking). A nil table is the default.
func (t *PresenceTable) ToXMPP(a Availability, note string, shareNote bool) (bool, Show, string) {
	if a == Unknown || a > Offline {
		return true, ShowNone, ""
	}
	row := t.toRow(a)
	status := row.label
	if shareNote && note != "" {
		status = note
	}
	if a == Offline {
		return true, ShowNone, status
	}
	return false, row.show, status
}

// FromXMPP implements PresenceMapper. An unavailable presence is Offline;
// an available one is the state whose row has this show and, as label,
// exactly status (the lowest such Availability), else the state the table
// gives show. The note is status unless status was that label. A show
// RFC 6121 §4.7.2.1 does not define gives Unknown (Decode refuses such a
// presence before asking). A nil table is the default.
func (t *PresenceTable) FromXMPP(unavailable bool, show Show, status string) (Availability, string) {
	if unavailable {
		if l := t.toRow(Offline).label; l != "" && status == l {
			return Offline, ""
		}
		return Offline, status
	}
	if showIndex(show) < 0 {
		return Unknown, status
	}
	if status != "" {
		for a := Available; a < Offline; a++ {
			if row := t.toRow(a); row.show == show && row.label == status {
				return a, ""
			}
		}
	}
	return t.fromShow(show), status
}

// SetToXMPP changes the host → XMPP row of a: the <show/> it goes out with
// and its generic label (the status text sent when the note is not
// shared; "" for none). For Offline, show must be ShowNone (it goes out
// as type='unavailable'). The label also selects a back on the way in
// (see FromXMPP). Unknown cannot be changed: there is nothing to send.
func (t *PresenceTable) SetToXMPP(a Availability, show Show, label string) error {
	if a == Unknown || a > Offline {
		return fmt.Errorf("translate: SetToXMPP: availability %v has no row", a)
	}
	if showIndex(show) < 0 {
		return fmt.Errorf("translate: SetToXMPP(%v): show %q is not one of RFC 6121 §4.7.2.1's values", a, string(show))
	}
	if a == Offline && show != ShowNone {
		return fmt.Errorf("translate: SetToXMPP(offline): show %q: an unavailable presence has no <show/>", string(show))
	}
	if err := checkText(label); err != nil {
		return fmt.Errorf("translate: SetToXMPP(%v): label: %v", a, err)
	}
	t.to[a] = toRow{set: true, show: show, label: label}
	return nil
}

// SetFromXMPP changes the XMPP → host row of show: the availability an
// available presence with that <show/> (and no label) means. a must be an
// available state (Available through Away).
func (t *PresenceTable) SetFromXMPP(show Show, a Availability) error {
	i := showIndex(show)
	if i < 0 {
		return fmt.Errorf("translate: SetFromXMPP: show %q is not one of RFC 6121 §4.7.2.1's values", string(show))
	}
	if a == Unknown || a >= Offline {
		return fmt.Errorf("translate: SetFromXMPP(%q): %v is not an available state", string(show), a)
	}
	t.from[i] = fromRow{set: true, a: a}
	return nil
}

// Clone returns a copy of t that can be changed without changing t. The
// clone of nil is the default table.
func (t *PresenceTable) Clone() *PresenceTable {
	if t == nil {
		return NewPresenceTable()
	}
	c := *t
	return &c
}

// Stable reports, as an error naming the first state that fails, whether
// every state's round trip is stable: for each a from Available to
// Offline, with an empty note and with the note shared or not, the
// presence ToXMPP gives, read back by FromXMPP and sent again by ToXMPP,
// is the same presence. The default table is stable (and gives every
// state back as it was); a changed one may not be, when a state goes out
// with a show that comes back as a state sent with another show. Two
// states with the same show and label are stable on the wire, but only
// the lower one comes back.
func (t *PresenceTable) Stable() error {
	for a := Available; a <= Offline; a++ {
		for _, share := range [...]bool{false, true} {
			u, s, st := t.ToXMPP(a, "", share)
			b, note := t.FromXMPP(u, s, st)
			u2, s2, st2 := t.ToXMPP(b, note, share)
			if u != u2 || s != s2 || st != st2 {
				return fmt.Errorf("translate: presence table not stable: %v goes out as %s, which comes back as %v and goes out as %s",
					a, describe(u, s, st), b, describe(u2, s2, st2))
			}
		}
	}
	return nil
}

// describe renders an XMPP presence for an error message.
func describe(unavailable bool, show Show, status string) string {
	d := "available"
	if unavailable {
		d = "unavailable"
	} else if show != ShowNone {
		d = "show " + strconv.Quote(string(show))
	}
	if status != "" {
		d += " status " + strconv.Quote(status)
	}
	return d
}

var _ PresenceMapper = (*PresenceTable)(nil)
