package sandbox

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/http"
	"sync"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// SignatureHeader carries the base64 RSA-SHA256 signature of the raw body.
const SignatureHeader = "x-wh-signature"

// signingKey is the sandbox's webhook key pair.
type signingKey struct {
	seed      int64
	private   *rsa.PrivateKey
	publicPEM []byte
}

var keyCache sync.Map // int64 seed -> *signingKey

// keyForSeed derives a 2048-bit RSA key from a seed, so that a sandbox
// restarted with the same seed publishes the same public key (a user's
// webhook.public_key keeps working). crypto/rsa.GenerateKey ignores its
// random source since Go 1.26, hence the primes are found here from a
// seeded generator. The key signs test deliveries only.
func keyForSeed(seed int64) *signingKey {
	if k, ok := keyCache.Load(seed); ok {
		return k.(*signingKey)
	}
	var b [32]byte
	binary.LittleEndian.PutUint64(b[:], uint64(seed))
	copy(b[8:], "memberflow webhook key")
	rng := rand.New(rand.NewChaCha8(b))
	e := big.NewInt(65537)
	one := big.NewInt(1)
	for {
		p, q := seededPrime(rng, 1024), seededPrime(rng, 1024)
		if p.Cmp(q) == 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(e, phi)
		if d == nil || n.BitLen() != 2048 {
			continue
		}
		key := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 65537}, D: d, Primes: []*big.Int{p, q}}
		key.Precompute()
		if key.Validate() != nil {
			continue
		}
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			continue
		}
		k := &signingKey{seed: seed, private: key, publicPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
		actual, _ := keyCache.LoadOrStore(seed, k)
		return actual.(*signingKey)
	}
}

func seededPrime(rng *rand.Rand, bits int) *big.Int {
	buf := make([]byte, bits/8)
	for {
		for i := 0; i < len(buf); i += 8 {
			binary.BigEndian.PutUint64(buf[i:], rng.Uint64())
		}
		buf[0] |= 0xC0 // two top bits: the product has exactly 2*bits bits
		buf[len(buf)-1] |= 1
		p := new(big.Int).SetBytes(buf)
		if p.ProbablyPrime(20) {
			return p
		}
	}
}

// Sign returns the x-wh-signature value for a body.
func Sign(key *rsa.PrivateKey, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// hook is a delivery built under the lock and sent after it.
type hook struct {
	typ    string
	record map[string]any
}

// userHook builds a UserCreate or UserUpdate delivery of a user of st,
// or nothing when no URL is registered. prev is the membership status
// before an update that changed it (our addition:
// previousMembershipStatus). The delivery names the user's location.
func (s *Server) userHook(typ string, st *store, idx int32, prev string) *hook {
	if len(s.hooks.URLs()) == 0 {
		return nil
	}
	rec := toMap(st.wire(&st.users[idx]))
	if prev != "" {
		rec["previousMembershipStatus"] = prev
	}
	return &hook{typ: typ, record: rec}
}

func (s *Server) paymentHook(typ string, idx int32) *hook {
	if len(s.hooks.URLs()) == 0 {
		return nil
	}
	rec := toMap(s.st.paymentWire(&s.st.payments[idx]))
	rec["locationId"] = DemoLocationID
	return &hook{typ: typ, record: rec}
}

func toMap(v any) map[string]any {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// send signs and delivers a hook in the background:
// {type, timestamp, webhookId, locationId, ...record}.
func (s *Server) send(h *hook) {
	if h == nil {
		return
	}
	seq := s.hookSeq.Add(1)
	rec := h.record
	rec["type"] = h.typ
	rec["timestamp"] = s.now().UTC().Format("2006-01-02T15:04:05.000Z")
	rec["webhookId"] = fmt.Sprintf("%08x%016x", uint32(s.seed.Seed), seq)
	if _, ok := rec["locationId"]; !ok {
		rec["locationId"] = DemoLocationID
	}
	body, err := json.Marshal(rec)
	if err != nil {
		s.log.Error("encoding a webhook", "error", err)
		return
	}
	sig, err := Sign(s.signingKey().private, body)
	if err != nil {
		s.log.Error("signing a webhook", "error", err)
		return
	}
	s.hooks.Send(sandboxkit.Delivery{Body: body, Header: http.Header{"X-Wh-Signature": {sig}}})
}

// newID draws a GoHighLevel-style id that is not in use; mu is held.
func (s *Server) newID() id20 { return s.newIDFrom(s.rng) }

// newIDFrom is newID with another generator (the other locations' seed).
func (s *Server) newIDFrom(rng *rand.Rand) id20 {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	for {
		var id id20
		// Two draws of 64 bits give 20 characters (10 per draw; the
		// slight modulo bias does not matter for ids).
		for half := 0; half < 2; half++ {
			x := rng.Uint64()
			for i := 0; i < 10; i++ {
				id[half*10+i] = alphabet[x%uint64(len(alphabet))]
				x /= uint64(len(alphabet))
			}
		}
		if !s.idUsed(id) {
			return id
		}
	}
}

// idUsed reports whether any location holds a user or payment with id.
func (s *Server) idUsed(id id20) bool {
	for _, st := range s.locs {
		if _, used := st.userByID[id]; used {
			return true
		}
		if _, used := st.paymentByID[id]; used {
			return true
		}
	}
	return false
}
