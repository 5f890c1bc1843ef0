// Package smtpsink is an SMTP server that keeps what it receives, for
// tests and the sandbox: github.com/emersion/go-smtp with STARTTLS (a
// certificate made at start for 127.0.0.1) and PLAIN login. Messages are
// parsed enough to assert on: envelope, subject, text.
package smtpsink

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one received email.
type Message struct {
	From     string    `json:"from"`
	To       []string  `json:"to"`
	Subject  string    `json:"subject"`
	Text     string    `json:"text"`
	TLS      bool      `json:"tls"`  // it came over STARTTLS
	User     string    `json:"user"` // who logged in, "" for nobody
	Received time.Time `json:"received"`
}

// Options configure a Sink.
type Options struct {
	// Username and Password, when set, are the only login accepted, and
	// a login is required.
	Username, Password string
	// NoTLS offers no STARTTLS (a local relay).
	NoTLS bool
	// OnMessage, when set, is told of each message as it arrives.
	OnMessage func(Message)
}

// Sink is a running SMTP server.
type Sink struct {
	srv  *smtp.Server
	ln   net.Listener
	opts Options
	// CAPEM is the PEM certificate the server presents (self-signed), to
	// trust as a CA.
	CAPEM []byte

	mu   sync.Mutex
	msgs []Message
	wake chan struct{}
}

// Start listens on 127.0.0.1 at a free port.
func Start(opts Options) (*Sink, error) { return StartAt("127.0.0.1:0", opts) }

// StartAt listens on addr.
func StartAt(addr string, opts Options) (*Sink, error) {
	s := &Sink{opts: opts, wake: make(chan struct{}, 1)}
	srv := smtp.NewServer(s)
	srv.Domain = "127.0.0.1"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = 1 << 20
	if !opts.NoTLS {
		cert, pemBytes, err := selfSigned()
		if err != nil {
			return nil, fmt.Errorf("smtpsink: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.CAPEM = pemBytes
	} else {
		srv.AllowInsecureAuth = true
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtpsink: %w", err)
	}
	s.srv, s.ln = srv, ln
	go srv.Serve(ln)
	return s, nil
}

// Addr is host:port.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// URL is smtp://host:port, a notify connection's base_url.
func (s *Sink) URL() string { return "smtp://" + s.Addr() }

// Close stops the server.
func (s *Sink) Close() error { return s.srv.Close() }

// Messages returns what arrived so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait returns once n messages arrived, or fails after d.
func (s *Sink) Wait(n int, d time.Duration) ([]Message, error) {
	deadline := time.After(d)
	for {
		if m := s.Messages(); len(m) >= n {
			return m, nil
		}
		select {
		case <-s.wake:
		case <-deadline:
			return s.Messages(), fmt.Errorf("smtpsink: %d message(s) after %s, want %d", len(s.Messages()), d, n)
		}
	}
}

// NewSession implements smtp.Backend.
func (s *Sink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{sink: s, conn: c}, nil
}

type session struct {
	sink *Sink
	conn *smtp.Conn
	user string
	from string
	to   []string
}

var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}

func (x *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (x *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != x.sink.opts.Username || password != x.sink.opts.Password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "invalid credentials"}
		}
		x.user = username
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.sink.opts.Username != "" && x.user == "" {
		return errAuthRequired
	}
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: x.from, To: append([]string(nil), x.to...), User: x.user, Received: time.Now()}
	if _, ok := x.conn.TLSConnectionState(); ok {
		m.TLS = true
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "malformed message: " + err.Error()}
	}
	dec := new(mimeDecoder)
	m.Subject, _ = dec.DecodeHeader(msg.Header.Get("Subject"))
	body, _ := io.ReadAll(msg.Body)
	m.Text = decodeBody(msg.Header.Get("Content-Transfer-Encoding"), body)
	x.sink.mu.Lock()
	x.sink.msgs = append(x.sink.msgs, m)
	x.sink.mu.Unlock()
	if f := x.sink.opts.OnMessage; f != nil {
		f(m)
	}
	select {
	case x.sink.wake <- struct{}{}:
	default:
	}
	return nil
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }

var _ smtp.AuthSession = (*session)(nil)

func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "memberflow smtpsink"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, errors.Join(errors.New("making a certificate"), err)
	}
	return cert, certPEM, nil
}

func decodeBody(cte string, body []byte) string {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		b, err := io.ReadAll(newQPReader(body))
		if err == nil {
			return string(b)
		}
	case "base64":
		return decodeBase64(body)
	}
	return string(body)
}
