package sandbox

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

var (
	firstNames = []string{"Maria", "James", "Aisha", "Wei", "Olivia", "Mateo", "Fatima", "Liam", "Sofia", "Noah",
		"Amara", "Lucas", "Priya", "Ethan", "Yuki", "Elena", "Kwame", "Chloe", "Omar", "Hannah",
		"Diego", "Ingrid", "Ravi", "Grace", "Tomás", "Leila", "Samuel", "Mei", "Jonas", "Zara",
		"Felix", "Nadia", "Arjun", "Emma", "Kofi", "Isabel", "Hugo", "Anya", "Daniel", "Sara"}
	lastNames = []string{"Garcia", "Smith", "Okafor", "Chen", "Johnson", "Rossi", "Khan", "Müller", "Silva", "Kim",
		"Nguyen", "Brown", "Patel", "Martin", "Tanaka", "Novak", "Mensah", "Dubois", "Haddad", "Cohen",
		"Lopez", "Larsen", "Iyer", "Walker", "Santos", "Rahman", "Adeyemi", "Wang", "Berg", "Ali",
		"Fischer", "Petrova", "Sharma", "Taylor", "Boateng", "Moreno", "Laurent", "Ivanova", "Murphy", "Costa"}
	// asciiNames are the names as they appear in email addresses.
	asciiNames              = strings.NewReplacer("á", "a", "ü", "u", "ö", "o")
	emailFirsts, emailLasts = emailParts(firstNames), emailParts(lastNames)
)

func emailParts(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToLower(asciiNames.Replace(n))
	}
	return out
}

// appendDigits appends n as exactly width digits.
func appendDigits(b []byte, n, width int) []byte {
	for i := width - 1; i >= 0; i-- {
		b = append(b, 0)
	}
	for i := len(b) - 1; i >= len(b)-width; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return b
}

// Seed replaces all state with cfg.Members deterministic members: about
// 40% eligible, 35% active, 15% lapsed and 10% pending, on three plans,
// with enrolment and eligibility dates, no certificate (memberflow issues
// them), and a payment for about half of the members. The webhook key
// is derived from cfg.Seed too. Seeding sends no webhooks.
func (s *Server) Seed(cfg sandboxkit.Seed) {
	if cfg.Now.IsZero() {
		cfg.Now = s.now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetState(cfg)
	s.key.Store(nil) // derived from cfg.Seed on first use
	st := s.st
	n := cfg.Members
	st.users = make([]user, 0, n)
	st.userLog = make([]logEntry, 0, n)
	st.userByID = make(map[id20]int32, n)
	st.userByEmail = make(map[string]int32, n)
	st.payments = make([]payment, 0, n/2+1)
	st.paymentLog = make([]logEntry, 0, n/2+1)
	st.paymentByID = make(map[id20]int32, n/2+1)
	st.paymentByRe = make(map[string]int32, n/2+1)
	now := cfg.Now.UTC()
	rng := s.rng
	var last int64
	emailBuf := make([]byte, 0, 64)
	for i := 0; i < n; i++ {
		u := user{roleType: "account", role: "user"}
		u.id = s.newID()
		fi, li := rng.IntN(len(firstNames)), rng.IntN(len(lastNames))
		u.firstName, u.lastName = firstNames[fi], lastNames[li]
		emailBuf = append(emailBuf[:0], emailFirsts[fi]...)
		emailBuf = append(emailBuf, '.')
		emailBuf = append(emailBuf, emailLasts[li]...)
		emailBuf = strconv.AppendInt(emailBuf, int64(i+1), 10)
		emailBuf = append(emailBuf, "@example.org"...)
		u.email = string(emailBuf)
		phone := append(emailBuf[len(emailBuf):], "+1 555-"...)
		phone = appendDigits(phone, rng.IntN(1000), 3)
		phone = append(phone, '-')
		phone = appendDigits(phone, rng.IntN(10000), 4)
		u.phone = string(phone)
		planIdx := rng.IntN(len(plans))
		u.plan = plans[planIdx].id
		// The status decides how long ago the member enrolled.
		var ago time.Duration
		switch x := rng.IntN(100); {
		case x < 40:
			u.status = statusEligible
			ago = 366*day + time.Duration(rng.Int64N(int64(730*day)))
		case x < 75:
			u.status = statusActive
			ago = time.Duration(rng.Int64N(int64(360 * day)))
		case x < 90:
			u.status = statusLapsed
			ago = 550*day + time.Duration(rng.Int64N(int64(550*day)))
		default:
			u.status = statusPending
			ago = time.Duration(rng.Int64N(int64(30 * day)))
		}
		added := now.Add(-ago)
		u.dateAdded = added.UnixNano()
		if u.status != statusPending {
			u.enrollment = dayNumber(added)
			u.eligibility = u.enrollment + 365
		}
		updated := added.Add(time.Duration(rng.Int64N(int64(ago/2 + time.Second))))
		u.dateUpdated = updated.UnixNano()
		switch x := rng.IntN(100); {
		case x < 50:
			u.registration = 0
		case x < 80:
			u.registration = 1
		case x < 95:
			u.registration = 2
		default:
			u.registration = 3
		}
		// No member starts with a certificate: an id made up here could be
		// one the Accredible sandbox gives a new credential, and a
		// write-back would then be skipped as already done. The draws stay,
		// so that the rest of the seed is what it was.
		if (u.status == statusEligible && rng.IntN(2) == 0) || (u.status == statusLapsed && rng.IntN(3) == 0) {
			_ = rng.IntN(30)
		}
		idx := st.addUser(u)
		last = max(last, u.dateUpdated)
		if rng.IntN(2) == 0 {
			p := payment{user: idx, amountCents: plans[planIdx].cents, currency: [3]byte{'U', 'S', 'D'}}
			p.id = s.newID()
			// Within a day of joining, never after now: a payment dated in
			// the future would move an incremental poller's cursor past
			// every change made before that date.
			p.createdAt = min(added.Add(time.Duration(rng.Int64N(int64(day)))).UnixNano(), now.UnixNano())
			p.updatedAt = p.createdAt
			switch x := rng.IntN(100); {
			case x < 90:
				p.status = 1 // paid
			case x < 95:
				p.status = 0 // pending
			case x < 98:
				p.status = 2 // refunded
			default:
				p.status = 3 // failed
			}
			if rng.IntN(2) == 0 {
				p.source, p.externalRef = "accelevents", "ae-order-"+strconv.Itoa(100000+i)
			} else {
				p.source, p.externalRef = "stripe", "ch_"+p.id.String()
			}
			st.addPayment(p)
			last = max(last, p.updatedAt)
		}
	}
	byTime := func(a, b logEntry) int {
		if a.at != b.at {
			if a.at < b.at {
				return -1
			}
			return 1
		}
		return int(a.idx - b.idx)
	}
	slices.SortFunc(st.userLog, byTime)
	slices.SortFunc(st.paymentLog, byTime)
	st.rebuildUserLive()
	st.rebuildPaymentLive()
	st.last = last
	s.seedOtherLocations(cfg, byTime)
}

// seedOtherLocations fills the company's other locations, after the demo
// location and from a generator of their own, so that the demo
// location's members, ids and payments are what they were with one
// location:
//
//	mfSandboxLocation002  a namesake of every tenth member (members 1,
//	                      11, 21, ...): the same name, email and phone, another
//	                      id, added a year before the member
//	mfSandboxLocation003  Members/20 people of its own (emails at example.net)
//
// Neither has payments. mu is held.
func (s *Server) seedOtherLocations(cfg sandboxkit.Seed, byTime func(a, b logEntry) int) {
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6c6f6361)) // "loca"
	demo := s.st
	status := func(u *user) {
		u.status = []uint8{statusActive, statusEligible, statusLapsed}[rng.IntN(3)]
		u.plan = plans[rng.IntN(len(plans))].id
	}
	second, third := s.locs[1], s.locs[2]
	for i := 0; i < len(demo.users); i += 10 {
		m := &demo.users[i]
		u := user{roleType: "account", role: "user", firstName: m.firstName, lastName: m.lastName, email: m.email, phone: m.phone}
		u.id = s.newIDFrom(rng)
		status(&u)
		u.dateAdded = m.dateAdded - int64(365*day)
		u.dateUpdated = u.dateAdded
		u.enrollment = dayNumber(time.Unix(0, u.dateAdded))
		u.eligibility = u.enrollment + 365
		second.addUser(u)
	}
	now := cfg.Now.UTC()
	for k := 0; k < len(demo.users)/20; k++ {
		u := user{roleType: "account", role: "user"}
		u.id = s.newIDFrom(rng)
		u.firstName, u.lastName = firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
		u.email = fmt.Sprintf("%s.%s.%d@example.net", strings.ToLower(asciiNames.Replace(u.firstName)), strings.ToLower(asciiNames.Replace(u.lastName)), k+1)
		status(&u)
		u.dateAdded = now.Add(-time.Duration(rng.Int64N(int64(1000 * day)))).UnixNano()
		u.dateUpdated = u.dateAdded
		u.enrollment = dayNumber(time.Unix(0, u.dateAdded))
		u.eligibility = u.enrollment + 365
		third.addUser(u)
	}
	for _, st := range s.locs[1:] {
		slices.SortFunc(st.userLog, byTime)
		st.rebuildUserLive()
		for _, e := range st.userLog {
			st.last = max(st.last, e.at)
		}
	}
}

// Mutation kinds the sandbox supports.
var mutationKinds = []string{"become_eligible", "lapse", "change_email", "payment", "new_member"}

// Mutate changes members the way real ones change:
//
//	become_eligible  active members become eligible (eligibilityDate today)
//	lapse            active or eligible members lapse
//	change_email     members change their email address
//	payment          a new paid payment arrives for a member (from Accelevents)
//	new_member       a new member applies (pending)
//
// Each change is a webhook, as if made through the API.
func (s *Server) Mutate(m sandboxkit.Mutation) (map[string]any, error) {
	if !slices.Contains(mutationKinds, m.Kind) {
		return nil, fmt.Errorf("memberships: unknown mutation kind %q; the kinds are %s", m.Kind, strings.Join(mutationKinds, ", "))
	}
	if m.Count <= 0 {
		m.Count = 1
	}
	s.mu.Lock()
	st := s.st
	now := s.now()
	var ids []string
	var hooks []*hook
	pick := func(ok func(u *user) bool) []int32 {
		// Deterministic for a seed: scan from a drawn offset.
		var out []int32
		if len(st.users) == 0 {
			return nil
		}
		start := s.rng.IntN(len(st.users))
		for k := 0; k < len(st.users) && len(out) < m.Count; k++ {
			i := int32((start + k) % len(st.users))
			if u := &st.users[i]; !u.deleted && ok(u) {
				out = append(out, i)
			}
		}
		return out
	}
	switch m.Kind {
	case "become_eligible", "lapse":
		to, from := statusEligible, []uint8{statusActive}
		if m.Kind == "lapse" {
			to, from = statusLapsed, []uint8{statusActive, statusEligible}
		}
		for _, i := range pick(func(u *user) bool { return slices.Contains(from, u.status) }) {
			u := &st.users[i]
			prev := membershipStatuses[u.status]
			u.status = to
			if to == statusEligible {
				u.eligibility = dayNumber(now)
			}
			st.touchUser(i, now)
			ids = append(ids, u.id.String())
			hooks = append(hooks, s.userHook("UserUpdate", st, i, prev))
		}
	case "change_email":
		for _, i := range pick(func(*user) bool { return true }) {
			u := &st.users[i]
			st.unlinkEmail(i)
			u.email = fmt.Sprintf("%s.%s.%d@example.net", strings.ToLower(asciiNames.Replace(u.firstName)), strings.ToLower(asciiNames.Replace(u.lastName)), s.rng.IntN(1_000_000))
			st.linkEmail(i)
			st.touchUser(i, now)
			ids = append(ids, u.id.String())
			hooks = append(hooks, s.userHook("UserUpdate", st, i, ""))
		}
	case "payment":
		for _, i := range pick(func(u *user) bool { return u.status != statusCancelled }) {
			p := payment{user: i, status: 1, currency: [3]byte{'U', 'S', 'D'}, source: "accelevents"}
			for _, pl := range plans {
				if pl.id == st.users[i].plan {
					p.amountCents = pl.cents
				}
			}
			p.id = s.newID()
			p.externalRef = "ae-order-" + strconv.Itoa(1_000_000+s.rng.IntN(9_000_000))
			p.createdAt = st.tick(now)
			p.updatedAt = p.createdAt
			idx := st.addPayment(p)
			ids = append(ids, p.id.String())
			hooks = append(hooks, s.paymentHook("PaymentCreate", idx))
		}
	case "new_member":
		for k := 0; k < m.Count; k++ {
			u := user{roleType: "account", role: "user", status: statusPending, plan: plans[s.rng.IntN(len(plans))].id}
			u.id = s.newID()
			u.firstName, u.lastName = firstNames[s.rng.IntN(len(firstNames))], lastNames[s.rng.IntN(len(lastNames))]
			u.email = fmt.Sprintf("%s.%s.new%d@example.org", strings.ToLower(asciiNames.Replace(u.firstName)), strings.ToLower(asciiNames.Replace(u.lastName)), len(st.users)+1)
			u.dateAdded = st.tick(now)
			u.dateUpdated = u.dateAdded
			idx := st.addUser(u)
			ids = append(ids, u.id.String())
			hooks = append(hooks, s.userHook("UserCreate", st, idx, ""))
		}
	}
	s.mu.Unlock()
	for _, h := range hooks {
		s.send(h)
	}
	sort.Strings(ids)
	return map[string]any{"kind": m.Kind, "changed": len(ids), "ids": ids}, nil
}

// Person returns the i-th member (0-based, in seed order), for the other
// sandboxes' seeds: their attendees are these members.
func (s *Server) Person(i int) (sandboxkit.Person, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 || i >= len(s.st.users) {
		return sandboxkit.Person{}, false
	}
	u := &s.st.users[i]
	return sandboxkit.Person{ID: u.id.String(), FirstName: u.firstName, LastName: u.lastName, Email: u.email}, true
}

var _ sandboxkit.PeopleSource = (*Server)(nil)
