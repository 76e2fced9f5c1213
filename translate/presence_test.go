package translate_test

import (
	"fmt"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/xmppfed/xmppfed/translate"
)

// xmppPresence is what ToXMPP returns.
type xmppPresence struct {
	unavailable bool
	show        translate.Show
	status      string
}

func toXMPP(pm translate.PresenceMapper, a translate.Availability, note string, share bool) xmppPresence {
	u, s, st := pm.ToXMPP(a, note, share)
	return xmppPresence{u, s, st}
}

// The rows of REFERENCE §4.5 (and the Idle label, see PresenceTable),
// host → XMPP, with no note.
func TestPresenceTableToXMPP(t *testing.T) {
	rows := []struct {
		a    translate.Availability
		want xmppPresence
	}{
		{translate.Available, xmppPresence{false, translate.ShowNone, ""}},
		{translate.Idle, xmppPresence{false, translate.ShowAway, "Idle"}},
		{translate.Busy, xmppPresence{false, translate.ShowDND, "Busy"}},
		{translate.DoNotDisturb, xmppPresence{false, translate.ShowDND, ""}},
		{translate.BeRightBack, xmppPresence{false, translate.ShowAway, "Be right back"}},
		{translate.Away, xmppPresence{false, translate.ShowXA, ""}},
		{translate.Offline, xmppPresence{true, translate.ShowNone, ""}},
		{translate.Unknown, xmppPresence{true, translate.ShowNone, ""}},
		{translate.Availability(200), xmppPresence{true, translate.ShowNone, ""}},
	}
	for _, tbl := range []*translate.PresenceTable{translate.NewPresenceTable(), new(translate.PresenceTable), nil} {
		for _, r := range rows {
			for _, share := range []bool{false, true} {
				// No note: the label, shared or not.
				if got := toXMPP(tbl, r.a, "", share); got != r.want {
					t.Errorf("ToXMPP(%v, \"\", %v) = %+v, want %+v", r.a, share, got, r.want)
				}
			}
			// A note not shared: still the label.
			if got := toXMPP(tbl, r.a, "secret plans", false); got != r.want {
				t.Errorf("ToXMPP(%v, note, false) = %+v, want %+v", r.a, got, r.want)
			}
			// A note shared replaces the label (not for Unknown).
			want := r.want
			if r.a != translate.Unknown && r.a <= translate.Offline {
				want.status = "In Verona"
			}
			if got := toXMPP(tbl, r.a, "In Verona", true); got != want {
				t.Errorf("ToXMPP(%v, note, true) = %+v, want %+v", r.a, got, want)
			}
		}
	}
}

// XMPP → host (REFERENCE §4.5).
func TestPresenceTableFromXMPP(t *testing.T) {
	rows := []struct {
		in   xmppPresence
		a    translate.Availability
		note string
	}{
		{xmppPresence{false, translate.ShowNone, ""}, translate.Available, ""},
		{xmppPresence{false, translate.ShowNone, "hi"}, translate.Available, "hi"},
		{xmppPresence{false, translate.ShowChat, ""}, translate.Available, ""},
		{xmppPresence{false, translate.ShowAway, ""}, translate.Away, ""},
		{xmppPresence{false, translate.ShowAway, "lunch"}, translate.Away, "lunch"},
		{xmppPresence{false, translate.ShowXA, ""}, translate.Away, ""},
		{xmppPresence{false, translate.ShowDND, ""}, translate.DoNotDisturb, ""},
		{xmppPresence{false, translate.ShowDND, "Busy"}, translate.Busy, ""},
		{xmppPresence{false, translate.ShowDND, "busy"}, translate.DoNotDisturb, "busy"},
		{xmppPresence{false, translate.ShowDND, "Be right back"}, translate.DoNotDisturb, "Be right back"},
		{xmppPresence{false, translate.ShowAway, "Be right back"}, translate.BeRightBack, ""},
		{xmppPresence{false, translate.ShowAway, "Idle"}, translate.Idle, ""},
		{xmppPresence{false, translate.ShowXA, "Busy"}, translate.Away, "Busy"},
		{xmppPresence{false, translate.ShowNone, "Busy"}, translate.Available, "Busy"},
		{xmppPresence{true, translate.ShowNone, ""}, translate.Offline, ""},
		{xmppPresence{true, translate.ShowNone, "Gone"}, translate.Offline, "Gone"},
		{xmppPresence{true, translate.ShowDND, "Busy"}, translate.Offline, "Busy"},
		{xmppPresence{false, "sleeping", "z"}, translate.Unknown, "z"},
	}
	for _, r := range rows {
		a, note := translate.NewPresenceTable().FromXMPP(r.in.unavailable, r.in.show, r.in.status)
		if a != r.a || note != r.note {
			t.Errorf("FromXMPP(%+v) = %v, %q; want %v, %q", r.in, a, note, r.a, r.note)
		}
	}
}

func TestPresenceTableStable(t *testing.T) {
	tbl := translate.NewPresenceTable()
	if err := tbl.Stable(); err != nil {
		t.Fatal(err)
	}
	// The property itself, exhaustively for the default table.
	checkStable(t, tbl)
	// More: the default table gives every state back as it was.
	for a := translate.Available; a <= translate.Offline; a++ {
		x := toXMPP(tbl, a, "", false)
		if b, note := tbl.FromXMPP(x.unavailable, x.show, x.status); b != a || note != "" {
			t.Errorf("%v -> %+v -> %v %q", a, x, b, note)
		}
	}
}

// checkStable checks ToXMPP(FromXMPP(ToXMPP(a))) == ToXMPP(a) for every
// state, shared note or not, directly (not through Stable).
func checkStable(t *testing.T, tbl *translate.PresenceTable) {
	t.Helper()
	for a := translate.Available; a <= translate.Offline; a++ {
		for _, share := range []bool{false, true} {
			x := toXMPP(tbl, a, "", share)
			b, note := tbl.FromXMPP(x.unavailable, x.show, x.status)
			if y := toXMPP(tbl, b, note, share); y != x {
				t.Errorf("%v -> %+v -> %v %q -> %+v", a, x, b, note, y)
			}
		}
	}
}

func TestPresenceTableModified(t *testing.T) {
	base := translate.NewPresenceTable()
	tbl := base.Clone()
	// A host with no Be Right Back label, Away sent as away with a label,
	// and chat read as Available (as before): all stable.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tbl.SetToXMPP(translate.BeRightBack, translate.ShowXA, "Back soon"))
	must(tbl.SetToXMPP(translate.Away, translate.ShowAway, "Away"))
	must(tbl.SetToXMPP(translate.Offline, translate.ShowNone, "Signed out"))
	must(tbl.SetFromXMPP(translate.ShowXA, translate.BeRightBack))
	if err := tbl.Stable(); err != nil {
		t.Fatal(err)
	}
	checkStable(t, tbl)
	rows := []struct {
		a    translate.Availability
		want xmppPresence
	}{
		{translate.BeRightBack, xmppPresence{false, translate.ShowXA, "Back soon"}},
		{translate.Away, xmppPresence{false, translate.ShowAway, "Away"}},
		{translate.Offline, xmppPresence{true, translate.ShowNone, "Signed out"}},
		{translate.Busy, xmppPresence{false, translate.ShowDND, "Busy"}},
	}
	for _, r := range rows {
		if got := toXMPP(tbl, r.a, "", false); got != r.want {
			t.Errorf("modified ToXMPP(%v) = %+v, want %+v", r.a, got, r.want)
		}
	}
	if a, note := tbl.FromXMPP(false, translate.ShowXA, "gone fishing"); a != translate.BeRightBack || note != "gone fishing" {
		t.Errorf("modified FromXMPP(xa) = %v %q", a, note)
	}
	if a, note := tbl.FromXMPP(true, translate.ShowNone, "Signed out"); a != translate.Offline || note != "" {
		t.Errorf("modified FromXMPP(unavailable, label) = %v %q", a, note)
	}
	// The original is unchanged by the clone's edits.
	if got := toXMPP(base, translate.Away, "", false); got != (xmppPresence{false, translate.ShowXA, ""}) {
		t.Errorf("Clone shares rows: the original now sends Away as %+v", got)
	}
	if c := (*translate.PresenceTable)(nil).Clone(); toXMPP(c, translate.Busy, "", false).status != "Busy" {
		t.Error("nil Clone is not the default table")
	}

	// Unstable changes are reported.
	bad := base.Clone()
	must(bad.SetFromXMPP(translate.ShowXA, translate.Available)) // Away -> xa -> Available -> no show
	if err := bad.Stable(); err == nil {
		t.Error("Stable accepts Away -> xa -> Available")
	}
	moved := base.Clone()
	must(moved.SetToXMPP(translate.DoNotDisturb, translate.ShowAway, "")) // away comes back as Away, sent as xa
	if err := moved.Stable(); err == nil {
		t.Error("Stable accepts DoNotDisturb -> away -> Away -> xa")
	}
	// Two states with the same show and label are stable on the wire, the
	// lower one is what comes back.
	dup := base.Clone()
	must(dup.SetToXMPP(translate.Idle, translate.ShowAway, "Be right back"))
	if err := dup.Stable(); err != nil {
		t.Error(err)
	}
	if a, _ := dup.FromXMPP(false, translate.ShowAway, "Be right back"); a != translate.Idle {
		t.Errorf("a shared label reads back as %v, want the lower state, idle", a)
	}
}

func TestPresenceTableSetErrors(t *testing.T) {
	tbl := translate.NewPresenceTable()
	for _, err := range []error{
		tbl.SetToXMPP(translate.Unknown, translate.ShowNone, ""),
		tbl.SetToXMPP(translate.Availability(99), translate.ShowNone, ""),
		tbl.SetToXMPP(translate.Away, "sleeping", ""),
		tbl.SetToXMPP(translate.Offline, translate.ShowAway, ""),
		tbl.SetToXMPP(translate.Busy, translate.ShowDND, "bad\x00label"),
		tbl.SetFromXMPP("sleeping", translate.Away),
		tbl.SetFromXMPP(translate.ShowAway, translate.Unknown),
		tbl.SetFromXMPP(translate.ShowAway, translate.Offline),
	} {
		if err == nil {
			t.Error("an invalid row was accepted")
		}
	}
	// Nothing changed.
	checkStable(t, tbl)
	if got := toXMPP(tbl, translate.Away, "", false); got != (xmppPresence{false, translate.ShowXA, ""}) {
		t.Errorf("a refused change changed the table: %+v", got)
	}
}

// Stable agrees with the property checked directly, for random tables.
func TestPresenceTableStableRandom(t *testing.T) {
	shows := []translate.Show{translate.ShowNone, translate.ShowChat, translate.ShowAway, translate.ShowXA, translate.ShowDND}
	rapid.Check(t, func(t *rapid.T) {
		tbl := translate.NewPresenceTable()
		for i := rapid.IntRange(0, 6).Draw(t, "changes"); i > 0; i-- {
			if rapid.Bool().Draw(t, "to") {
				a := translate.Availability(rapid.IntRange(int(translate.Available), int(translate.Offline)).Draw(t, "a"))
				show := rapid.SampledFrom(shows).Draw(t, "show")
				if a == translate.Offline {
					show = translate.ShowNone
				}
				label := rapid.SampledFrom([]string{"", "Busy", "Idle", "Be right back", "Away"}).Draw(t, "label")
				if err := tbl.SetToXMPP(a, show, label); err != nil {
					t.Fatal(err)
				}
			} else {
				a := translate.Availability(rapid.IntRange(int(translate.Available), int(translate.Away)).Draw(t, "a"))
				if err := tbl.SetFromXMPP(rapid.SampledFrom(shows).Draw(t, "show"), a); err != nil {
					t.Fatal(err)
				}
			}
		}
		stable := true
		for a := translate.Available; a <= translate.Offline; a++ {
			for _, share := range []bool{false, true} {
				x := toXMPP(tbl, a, "", share)
				b, note := tbl.FromXMPP(x.unavailable, x.show, x.status)
				if toXMPP(tbl, b, note, share) != x {
					stable = false
				}
			}
		}
		if err := tbl.Stable(); (err == nil) != stable {
			t.Fatalf("Stable() = %v, but the property holds: %v", err, stable)
		}
	})
}

// A configured table is read from many goroutines (run with -race).
func TestPresenceTableConcurrentReads(t *testing.T) {
	tbl := translate.NewPresenceTable()
	if err := tbl.SetToXMPP(translate.Away, translate.ShowXA, "Away"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]string, 8)
	for i := range results {
		wg.Go(func() {
			var s string
			for a := translate.Unknown; a <= translate.Offline; a++ {
				u, show, st := tbl.ToXMPP(a, "", false)
				b, n := tbl.FromXMPP(u, show, st)
				s += fmt.Sprint(a, u, show, st, b, n)
			}
			results[i] = s
		})
	}
	wg.Wait()
	for i := range results {
		if results[i] != results[0] {
			t.Fatalf("goroutine %d saw %q, goroutine 0 %q", i, results[i], results[0])
		}
	}
}
