package sandboxkit

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Delivery is one signed webhook to send.
type Delivery struct {
	Body   []byte
	Header http.Header // the signature headers, set by the service
}

// Deliverer sends webhooks to registered URLs, retrying failures with
// backoff (1 s, 2 s, 4 s ... up to Attempts), in the background.
type Deliverer struct {
	Client   *http.Client
	Attempts int // default 5
	Backoff  time.Duration
	Log      hclog.Logger

	mu           sync.Mutex
	urls         []string
	wg           sync.WaitGroup
	sent, failed int64
}

// Register adds a URL that receives every delivery.
func (d *Deliverer) Register(url string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.urls {
		if u == url {
			return
		}
	}
	d.urls = append(d.urls, url)
}

// URLs returns the registered URLs.
func (d *Deliverer) URLs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.urls...)
}

// Reset forgets every URL.
func (d *Deliverer) Reset() {
	d.mu.Lock()
	d.urls = nil
	d.mu.Unlock()
}

// Send delivers to every registered URL in the background.
func (d *Deliverer) Send(del Delivery) {
	for _, u := range d.URLs() {
		d.wg.Add(1)
		go func(url string) {
			defer d.wg.Done()
			d.deliver(url, del)
		}(u)
	}
}

// Wait blocks until every delivery in flight has finished or ctx ends.
func (d *Deliverer) Wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Counts reports deliveries that succeeded and that gave up.
func (d *Deliverer) Counts() (sent, failed int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sent, d.failed
}

func (d *Deliverer) deliver(url string, del Delivery) {
	client := d.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	attempts, backoff := d.Attempts, d.Backoff
	if attempts <= 0 {
		attempts = 5
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	for i := 0; i < attempts; i++ {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(del.Body))
		if err == nil {
			for k, v := range del.Header {
				req.Header[k] = v
			}
			req.Header.Set("Content-Type", "application/json")
			var res *http.Response
			res, err = client.Do(req)
			if err == nil {
				res.Body.Close()
				if res.StatusCode < 300 {
					d.mu.Lock()
					d.sent++
					d.mu.Unlock()
					return
				}
			}
		}
		if d.Log != nil {
			d.Log.Debug("webhook delivery failed; retrying", "url", url, "attempt", i+1)
		}
		time.Sleep(backoff << i)
	}
	d.mu.Lock()
	d.failed++
	d.mu.Unlock()
}
