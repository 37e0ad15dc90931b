// Package crosswiretest is a scripted stand-in for a crosswire node, for
// testing workers without one: it listens on a Unix socket in a private
// directory, and a test drives the protocol frame by frame.
//
//	node := crosswiretest.Listen(t)
//	w, err := crosswire.NewWorker("pricing", node.Options()...)
//	// w.Handle(...)
//	go w.Run(ctx)
//	conn := node.Accept(t)
//	hello := conn.Handshake(t, crosswiretest.Welcome())
//	conn.Deliver(t, 1, ev, 0)
//	res := conn.Result(t)
package crosswiretest

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	crosswire "github.com/crosswire-dev/crosswire/sdk/go"
)

// Timeout bounds every wait of this package.
var Timeout = 5 * time.Second

// Node listens for one or more worker connections.
type Node struct {
	Path string // the socket path: give it to the worker (CROSSWIRE_SOCKET)
	ln   net.Listener
}

// Listen creates a private directory (0700) with a socket (0600) and listens on
// it; both are removed when the test ends.
func Listen(t testing.TB) *Node {
	t.Helper()
	dir, err := os.MkdirTemp("", "cw") // short: socket paths are limited to ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "node.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); os.RemoveAll(dir) })
	return &Node{Path: path, ln: ln}
}

// Options are the worker options for a worker under test: this node's socket
// and no signal handling (the test process keeps its own SIGINT).
func (n *Node) Options() []crosswire.Option {
	return []crosswire.Option{crosswire.WithSocket(n.Path), crosswire.WithSignals(false)}
}

// Accept waits for a worker to connect.
func (n *Node) Accept(t testing.TB) *Conn {
	t.Helper()
	if ul, ok := n.ln.(*net.UnixListener); ok {
		_ = ul.SetDeadline(time.Now().Add(Timeout))
	}
	c, err := n.ln.Accept()
	if err != nil {
		t.Fatalf("crosswiretest: no worker connected: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &Conn{C: c, fr: crosswire.NewFrameReader(c, crosswire.DefaultMaxFrame)}
}

// Conn is the node's side of one worker session.
type Conn struct {
	C  net.Conn
	fr *crosswire.FrameReader
	// Heartbeats counts heartbeat frames skipped by Recv.
	Heartbeats int
	// Logs counts log frames skipped by Recv.
	Logs int
}

// Welcome is a welcome frame with the defaults of a real node.
func Welcome() crosswire.WelcomeFrame {
	return crosswire.WelcomeFrame{Version: 1, MaxFrame: crosswire.DefaultMaxFrame, HeartbeatMS: 1000, Node: "test-node"}
}

// Send writes one frame.
func (c *Conn) Send(t testing.TB, f crosswire.Frame) {
	t.Helper()
	c.SendRaw(t, crosswire.EncodeFrame(f))
}

// SendRaw writes bytes as they are (for malformed or oversized frames).
func (c *Conn) SendRaw(t testing.TB, b []byte) {
	t.Helper()
	_ = c.C.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := c.C.Write(b); err != nil {
		t.Fatalf("crosswiretest: write: %v", err)
	}
}

// Next reads the next frame, heartbeats included.
func (c *Conn) Next(timeout time.Duration) (crosswire.Frame, error) {
	_ = c.C.SetReadDeadline(time.Now().Add(timeout))
	return c.fr.ReadFrame()
}

// Recv reads the next frame that is not a heartbeat, failing the test on error.
func (c *Conn) Recv(t testing.TB) crosswire.Frame {
	t.Helper()
	for {
		f, err := c.Next(Timeout)
		if err != nil {
			t.Fatalf("crosswiretest: read: %v", err)
		}
		if _, ok := f.(crosswire.HeartbeatFrame); ok {
			c.Heartbeats++
			continue
		}
		if u, ok := f.(crosswire.UnknownFrame); ok && u.T == "log" {
			c.Logs++ // a line the handler logged (spec/protocol.md "Spans and logs")
			continue
		}
		return f
	}
}

// Expect reads the next non-heartbeat frame and fails unless it is a T.
func Expect[T crosswire.Frame](t testing.TB, c *Conn) T {
	t.Helper()
	f := c.Recv(t)
	x, ok := f.(T)
	if !ok {
		var zero T
		t.Fatalf("crosswiretest: got %#v, want a %s frame", f, zero.FrameType())
	}
	return x
}

// Handshake reads hello, answers with welcome, sends init and waits for ready.
func (c *Conn) Handshake(t testing.TB, w crosswire.WelcomeFrame) crosswire.HelloFrame {
	t.Helper()
	hello := Expect[crosswire.HelloFrame](t, c)
	c.Send(t, w)
	c.Send(t, crosswire.InitFrame{})
	Expect[crosswire.ReadyFrame](t, c)
	return hello
}

// Deliver sends one event; deadline is unix ms (0 = none). An event without a
// source (as NewEvent leaves it) is sent with source "/crosswiretest", one
// without an id with a fresh one; ev itself is not changed.
func (c *Conn) Deliver(t testing.TB, id uint64, ev *crosswire.Event, deadline uint64) {
	t.Helper()
	if ev.Source == "" || ev.ID == "" {
		ev = ev.Clone()
		if ev.Source == "" {
			ev.Source = "/crosswiretest"
		}
		if ev.ID == "" {
			ev.ID = crosswire.NewID()
		}
	}
	b, err := crosswire.EncodeEvent(ev)
	if err != nil {
		t.Fatalf("crosswiretest: encode event: %v", err)
	}
	c.Send(t, crosswire.DeliverFrame{ID: id, Envelope: b, Deadline: deadline})
}

// Result waits for the next result frame.
func (c *Conn) Result(t testing.TB) crosswire.ResultFrame {
	t.Helper()
	return Expect[crosswire.ResultFrame](t, c)
}

// Closed waits for the worker to close the connection, returning the frames
// it sent before (heartbeats excluded).
func (c *Conn) Closed(t testing.TB) []crosswire.Frame {
	t.Helper()
	var got []crosswire.Frame
	for {
		f, err := c.Next(Timeout)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("crosswiretest: worker did not close the connection; frames so far: %#v", got)
			}
			return got
		}
		if _, ok := f.(crosswire.HeartbeatFrame); ok {
			c.Heartbeats++
		} else {
			got = append(got, f)
		}
	}
}
