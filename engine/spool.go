package engine

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// A delivery spool keeps the webhook deliveries the store refused, so
// that a store outage (a Postgres failover, a full disk) longer than a
// sender's retries loses none: the runner appends the verified delivery
// to an append-only file in its spool directory, fsyncs it, and only then
// answers 2xx; when the store takes writes again the spool is replayed
// into it in order (the store drops an event it already has, by its ID)
// and each file is removed once its events are committed.
//
// Files are segments named spool-<sequence>.log, written in sequence
// order. A segment starts with spoolMagic, then holds records:
//
//	uint32 length (little endian) | uint32 CRC-32C of the payload | payload
//
// where the payload is a spoolRecord as JSON. A record is appended with one
// write and acknowledged only after the file is fsynced; a runner that
// crashes mid-append leaves a torn last record, which the reader detects
// (too short, or a checksum that does not match) and drops: it was never
// acknowledged. Appends after a restart go to a new segment, never to the
// end of an old one, so a torn record is always a segment's last.

const (
	spoolMagic = "MFSPOOL1"
	// spoolRecordMax bounds one record's payload (a delivery is at most
	// MaxWebhookBody; its events as JSON may be somewhat larger): a
	// length above it is damage, not a record.
	spoolRecordMax = 16 * MaxWebhookBody
	// spoolSegmentMax is the size past which appends start a new
	// segment, so that a replay reads and removes the spool in steps.
	spoolSegmentMax = 64 << 20
	spoolHeader     = 8 // length and checksum
)

var spoolCRC = crc32.MakeTable(crc32.Castagnoli)

// ErrSpoolFull is returned (wrapped, with the figures) when the spool
// refuses a delivery for its size or its oldest delivery's age.
var ErrSpoolFull = errors.New("the delivery spool is full")

// errSpoolDead is what a spool that hit a test crash point answers.
var errSpoolDead = errors.New("the spool's process is gone (simulated crash)")

// SpoolOptions bound a spool.
type SpoolOptions struct {
	// MaxBytes is the most the spool's files may hold; default 1 GiB.
	MaxBytes int64
	// MaxAge is how long a delivery may wait in the spool: while the
	// oldest has waited longer, new deliveries are refused (503) and
	// readiness fails. Default 24 hours.
	MaxAge time.Duration
	Logger hclog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Spool is a runner's delivery spool (see the comment above). Open it
// with OpenSpool, give it to the engine (Options.Spool), Close it after
// the engine. One runner at a time: OpenSpool locks the directory.
type Spool struct {
	dir  string
	opts SpoolOptions
	log  hclog.Logger
	lock *spoolLock

	mu      sync.Mutex
	cur     *os.File // the segment appends go to; nil: none open
	curSize int64
	segs    []*spoolSeg // in sequence order; cur's is the last
	nextSeq uint64
	// recipes counts the deliveries in the spool by recipe.
	recipes map[string]int
	// refused is the last refusal for size; cleared when room is made.
	refused error
	closed  bool
	dead    bool
	// crash, set by tests, is asked at each crash point; true kills the
	// spool there, as if the process had died.
	crash func(point string) bool

	// replayMu lets one replay run at a time.
	replayMu sync.Mutex
}

// spoolSeg is one segment file.
type spoolSeg struct {
	seq     uint64
	path    string
	bytes   int64
	records int
	oldest  time.Time
	recipes map[string]int
	// done counts the records at its start a replay of this process has
	// committed: the next replay resumes after them.
	done int
	// open says appends may still go to it.
	open bool
}

// spoolRecord is one delivery as the spool keeps it: what the store
// would keep of it (its events), never its signature or a credential. A
// delivery whose parsing needed the store (a trigger that reads the
// remembered state of a subject) is kept as its verified body instead,
// and parsed at replay.
type spoolRecord struct {
	Recipe   string       `json:"recipe"`
	Received time.Time    `json:"received"`
	Events   []spoolEvent `json:"events,omitempty"`
	Body     []byte       `json:"body,omitempty"`
}

type spoolEvent struct {
	ID          string          `json:"id"`
	Subject     string          `json:"subject,omitempty"`
	Fingerprint string          `json:"fingerprint,omitempty"`
	Time        time.Time       `json:"time,omitzero"`
	Data        json.RawMessage `json:"data"`
}

// SpoolStats is what the spool holds.
type SpoolStats struct {
	Dir string
	// Deliveries waits in the spool, not yet in the store.
	Deliveries int
	// Bytes is the size of the spool's files.
	Bytes int64
	// Oldest is when the oldest delivery waiting was received; zero when
	// none waits.
	Oldest time.Time
	// Full is the reason deliveries are refused, nil when they are not.
	Full error
}

// OpenSpool opens (creating it if needed) the spool directory dir and
// reads what an earlier runner left there, which the engine replays into
// the store before anything else. It refuses a directory another process
// has open as its spool.
func OpenSpool(dir string, opts SpoolOptions) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("delivery spool %s: %w", dir, err)
	}
	lock, held, err := lockSpool(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("delivery spool %s: locking it: %w", dir, err)
	}
	if !held {
		return nil, fmt.Errorf("delivery spool %s: another runner uses it (give each runner its own --spool directory)", dir)
	}
	s := &Spool{dir: dir, opts: opts, log: opts.Logger.Named("spool"), lock: lock, nextSeq: 1, recipes: map[string]int{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		lock.unlock()
		return nil, fmt.Errorf("delivery spool %s: %w", dir, err)
	}
	for _, ent := range entries {
		seq, ok := spoolSeq(ent.Name())
		if !ok {
			continue
		}
		seg := &spoolSeg{seq: seq, path: filepath.Join(dir, ent.Name()), recipes: map[string]int{}}
		data, err := os.ReadFile(seg.path)
		if err != nil {
			lock.unlock()
			return nil, fmt.Errorf("delivery spool %s: %w", dir, err)
		}
		recs, valid, perr := parseSpool(data)
		if errors.Is(perr, errNotSpool) {
			lock.unlock()
			return nil, fmt.Errorf("delivery spool %s: %s: %w", dir, ent.Name(), perr)
		}
		if perr != nil {
			s.log.Warn("dropping a torn record at the end of a spool file: a runner stopped while writing it, before it was acknowledged",
				"file", seg.path, "records", len(recs), "bytes_dropped", len(data)-valid, "why", perr)
		}
		seg.bytes = int64(len(data))
		for _, r := range recs {
			seg.count(r)
		}
		s.segs = append(s.segs, seg)
		for name, n := range seg.recipes {
			s.recipes[name] += n
		}
		s.nextSeq = max(s.nextSeq, seq+1)
	}
	slices.SortFunc(s.segs, func(a, b *spoolSeg) int { return cmpUint(a.seq, b.seq) })
	if st := s.Stats(); st.Deliveries > 0 {
		s.log.Info("the delivery spool holds deliveries an earlier runner could not store; they are stored first",
			"dir", dir, "deliveries", st.Deliveries, "oldest", st.Oldest)
	}
	return s, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (seg *spoolSeg) count(r spoolRecord) {
	seg.records++
	seg.recipes[r.Recipe]++
	if seg.oldest.IsZero() || r.Received.Before(seg.oldest) {
		seg.oldest = r.Received
	}
}

func spoolName(seq uint64) string { return fmt.Sprintf("spool-%020d.log", seq) }

func spoolSeq(name string) (uint64, bool) {
	if !strings.HasPrefix(name, "spool-") || !strings.HasSuffix(name, ".log") {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "spool-"), ".log"), 10, 64)
	return n, err == nil
}

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Close closes the spool's files and unlocks its directory. What it
// holds stays for the next runner.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.cur != nil {
		err = s.cur.Close()
		s.cur = nil
	}
	s.lock.unlock()
	return err
}

// Stats says what the spool holds.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SpoolStats{Dir: s.dir}
	for _, seg := range s.segs {
		st.Deliveries += seg.records - seg.done
		st.Bytes += seg.bytes
		if seg.records > seg.done && (st.Oldest.IsZero() || seg.oldest.Before(st.Oldest)) {
			st.Oldest = seg.oldest
		}
	}
	st.Full = s.fullLocked(st, 0)
	return st
}

// fullLocked says why a delivery of add bytes is refused, nil when it is
// not: the spool is past its size, or its oldest delivery has waited
// longer than MaxAge (the store has refused deliveries for that long).
func (s *Spool) fullLocked(st SpoolStats, add int64) error {
	if !st.Oldest.IsZero() {
		if waited := s.opts.Now().Sub(st.Oldest); waited > s.opts.MaxAge {
			return fmt.Errorf("%w: %s holds a delivery received %s ago, longer than its limit of %s (--spool-max-age): the store has refused deliveries for that long; deliveries are refused (503) until it takes them",
				ErrSpoolFull, s.dir, waited.Round(time.Second), s.opts.MaxAge)
		}
	}
	if add == 0 {
		// Readiness: full since a delivery was refused for its size, until
		// one fits again or a replay makes room.
		return s.refused
	}
	if st.Bytes+add > s.opts.MaxBytes {
		s.refused = fmt.Errorf("%w: %s holds %d bytes (%d deliveries) and a delivery of %d bytes would pass its limit of %d (--spool-max-bytes); deliveries are refused (503) until the store takes the spooled ones",
			ErrSpoolFull, s.dir, st.Bytes, st.Deliveries, add, s.opts.MaxBytes)
		return s.refused
	}
	return nil
}

// pending says whether deliveries wait in the spool: new deliveries then
// go behind them, so that a subject's deliveries are stored in the order
// they were acknowledged.
func (s *Spool) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.segs) > 0
}

// crashAt asks the test hook whether the process dies at point.
func (s *Spool) crashAt(point string) bool {
	if s.crash != nil && s.crash(point) {
		s.dead = true
		return true
	}
	return false
}

// encodeSpool frames records for a segment.
func encodeSpool(recs []spoolRecord) ([]byte, error) {
	var buf []byte
	for _, r := range recs {
		p, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encoding a delivery of recipe %q for the spool: %w", r.Recipe, err)
		}
		if len(p) > spoolRecordMax {
			return nil, fmt.Errorf("a delivery of recipe %q is %d bytes as a spool record, more than %d", r.Recipe, len(p), spoolRecordMax)
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(p)))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(p, spoolCRC))
		buf = append(buf, p...)
	}
	return buf, nil
}

// append writes records to the spool and makes them durable (the file
// fsynced, and a new file's directory entry too) before it returns nil.
// With ifPending it appends only when deliveries already wait, and says
// whether it did.
func (s *Spool) append(recs []spoolRecord, ifPending bool) (bool, error) {
	buf, err := encodeSpool(recs)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.dead:
		return false, errSpoolDead
	case s.closed:
		return false, fmt.Errorf("delivery spool %s: closed", s.dir)
	case ifPending && len(s.segs) == 0:
		return false, nil
	}
	st := SpoolStats{}
	for _, seg := range s.segs {
		st.Deliveries += seg.records - seg.done
		st.Bytes += seg.bytes
		if seg.records > seg.done && (st.Oldest.IsZero() || seg.oldest.Before(st.Oldest)) {
			st.Oldest = seg.oldest
		}
	}
	if err := s.fullLocked(st, int64(len(buf))); err != nil {
		return false, err
	}
	if s.cur != nil && s.curSize+int64(len(buf)) > spoolSegmentMax {
		s.closeCurLocked()
	}
	if s.cur == nil {
		if err := s.newSegmentLocked(); err != nil {
			return false, err
		}
	}
	seg := s.segs[len(s.segs)-1]
	if s.crashAt("before-write") {
		return false, errSpoolDead
	}
	if s.crashAt("torn-write") {
		// Half the records' bytes reach the file, then the process dies.
		s.cur.Write(buf[:len(buf)/2])
		return false, errSpoolDead
	}
	if _, err := s.cur.Write(buf); err != nil {
		// What reached the file is a torn record, dropped by the reader;
		// later appends go to a new segment, after it.
		s.closeCurLocked()
		return false, fmt.Errorf("delivery spool %s: writing: %w", s.dir, err)
	}
	seg.bytes += int64(len(buf))
	s.curSize += int64(len(buf))
	if s.crashAt("before-sync") {
		return false, errSpoolDead
	}
	if err := s.cur.Sync(); err != nil {
		// Not durable: not acknowledged (the records may still be
		// replayed; the sender's next try is then a duplicate, dropped).
		s.closeCurLocked()
		return false, fmt.Errorf("delivery spool %s: syncing to disk: %w", s.dir, err)
	}
	for _, r := range recs {
		seg.count(r)
		s.recipes[r.Recipe]++
	}
	s.refused = nil
	if s.crashAt("after-sync") {
		return false, errSpoolDead
	}
	return true, nil
}

func (s *Spool) newSegmentLocked() error {
	seq := s.nextSeq
	path := filepath.Join(s.dir, spoolName(seq))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("delivery spool %s: %w", s.dir, err)
	}
	if _, err := f.Write([]byte(spoolMagic)); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("delivery spool %s: %w", s.dir, err)
	}
	// The file's entry must survive a power loss with its records.
	if err := syncDir(s.dir); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("delivery spool %s: syncing the directory: %w", s.dir, err)
	}
	s.nextSeq++
	s.cur, s.curSize = f, int64(len(spoolMagic))
	s.segs = append(s.segs, &spoolSeg{seq: seq, path: path, bytes: int64(len(spoolMagic)), recipes: map[string]int{}, open: true})
	return nil
}

func (s *Spool) closeCurLocked() {
	if s.cur == nil {
		return
	}
	s.cur.Close()
	s.cur = nil
	if n := len(s.segs); n > 0 {
		s.segs[n-1].open = false
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// sealed closes the segment appends go to and returns the segments, all
// closed now, for a replay; appends meanwhile start a new segment.
func (s *Spool) sealed() ([]*spoolSeg, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return nil, errSpoolDead
	}
	s.closeCurLocked()
	return slices.Clone(s.segs), nil
}

// committed notes that a replay has committed the first n records of seg.
func (s *Spool) committed(seg *spoolSeg, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg.done = max(seg.done, min(n, seg.records))
}

// remove deletes a segment whose every record is committed.
func (s *Spool) remove(seg *spoolSeg) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return errSpoolDead
	}
	if s.crashAt("before-remove") {
		return errSpoolDead
	}
	if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delivery spool %s: removing %s: %w", s.dir, filepath.Base(seg.path), err)
	}
	// A removal lost to a power loss only replays the file again: its
	// events are then duplicates, dropped. No need to sync the directory.
	s.segs = slices.DeleteFunc(s.segs, func(x *spoolSeg) bool { return x == seg })
	for name, n := range seg.recipes {
		if s.recipes[name] -= n; s.recipes[name] <= 0 {
			delete(s.recipes, name)
		}
	}
	s.refused = nil
	return nil
}

// spooledRecipes lists the recipes that have deliveries in the spool.
func (s *Spool) spooledRecipes() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.recipes))
	for k, v := range s.recipes {
		out[k] = v
	}
	return out
}

// errNotSpool: a file named as a segment that is not one.
var errNotSpool = errors.New("not a memberflow spool file (it does not start with " + spoolMagic + "): move it out of the spool directory")

// parseSpool reads a segment's records. valid is the length of the
// prefix that holds whole, intact records; err says why the rest (a torn
// or damaged last record) was dropped, nil when nothing was. A file
// shorter than the magic that begins like it is a segment whose runner
// died while creating it: empty.
func parseSpool(data []byte) (recs []spoolRecord, valid int, err error) {
	if len(data) < len(spoolMagic) {
		if strings.HasPrefix(spoolMagic, string(data)) {
			return nil, len(data), nil
		}
		return nil, 0, errNotSpool
	}
	if string(data[:len(spoolMagic)]) != spoolMagic {
		return nil, 0, errNotSpool
	}
	off := len(spoolMagic)
	for off < len(data) {
		rest := data[off:]
		if len(rest) < spoolHeader {
			return recs, off, fmt.Errorf("a record header cut short at byte %d (%d of %d bytes)", off, len(rest), spoolHeader)
		}
		n := binary.LittleEndian.Uint32(rest)
		sum := binary.LittleEndian.Uint32(rest[4:])
		if n == 0 || n > spoolRecordMax {
			return recs, off, fmt.Errorf("a record at byte %d claims %d bytes", off, n)
		}
		if uint64(len(rest)-spoolHeader) < uint64(n) {
			return recs, off, fmt.Errorf("a record at byte %d cut short (%d of %d bytes)", off, len(rest)-spoolHeader, n)
		}
		p := rest[spoolHeader : spoolHeader+int(n)]
		if crc32.Checksum(p, spoolCRC) != sum {
			return recs, off, fmt.Errorf("a record at byte %d does not match its checksum", off)
		}
		var r spoolRecord
		if err := json.Unmarshal(p, &r); err != nil {
			return recs, off, fmt.Errorf("a record at byte %d is not a delivery: %w", off, err)
		}
		if r.Recipe == "" || (len(r.Events) == 0) == (len(r.Body) == 0) {
			return recs, off, fmt.Errorf("a record at byte %d is not a delivery (no recipe, or neither events nor a body)", off)
		}
		recs = append(recs, r)
		off += spoolHeader + int(n)
	}
	return recs, off, nil
}
