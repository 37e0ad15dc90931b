package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	crosswire "github.com/crosswire-dev/crosswire/sdk/go"
	"github.com/crosswire-dev/crosswire/sdk/go/crosswiretest"
	"github.com/vmihailenco/msgpack/v5"
)

// These tests build the real program and drive it over a real socket, as the
// node's end-to-end tests do.

var workerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cwtw")
	if err != nil {
		panic(err)
	}
	workerBin = filepath.Join(dir, "crosswire-testworker")
	out, err := exec.Command("go", "build", "-o", workerBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build failed: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	conn   *crosswiretest.Conn
}

func spawn(t *testing.T, args ...string) *proc {
	t.Helper()
	node := crosswiretest.Listen(t)
	p := &proc{cmd: exec.Command(workerBin, args...)}
	p.cmd.Env = append(os.Environ(), "CROSSWIRE_SOCKET="+node.Path)
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	p.conn = node.Accept(t)
	return p
}

// wait returns the exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(5 * time.Second):
		t.Fatal("worker did not exit")
		return -1
	}
}

func payload(t *testing.T, typ string, v any, attempt int) *crosswire.Event {
	t.Helper()
	ev := crosswire.MustNewEvent(typ, v)
	ev.Source, ev.Attempt = "/test", attempt
	return ev
}

func TestHandlersBehaveAsSpecified(t *testing.T) {
	p := spawn(t, "--max-in-flight", "4")
	hello := p.conn.Handshake(t, crosswiretest.Welcome())
	if hello.Name != "testworker-go" || hello.MaxInFlight != 4 || hello.Runtime != "go" || len(hello.Types) != 10 {
		t.Errorf("hello %+v", hello)
	}
	if got := hello.Schemas["test.versioned"]; len(hello.Schemas) != 1 || len(got) != 1 || got[0] != TestOrderDataSchema {
		t.Errorf("hello schemas %v, want only test.versioned: [%s]", hello.Schemas, TestOrderDataSchema)
	}
	c := p.conn
	check := func(id uint64, ev *crosswire.Event, deadline uint64) crosswire.ResultFrame {
		t.Helper()
		c.Deliver(t, id, ev, deadline)
		r := c.Result(t)
		if r.ID != id {
			t.Fatalf("result for %d, want %d", r.ID, id)
		}
		return r
	}
	if r := check(1, payload(t, "test.echo", nil, 1), 0); !r.OK {
		t.Errorf("echo %+v", r)
	}
	r := check(2, payload(t, "test.fail_transient", map[string]int{"fail_until": 3}, 2), 0)
	if e := r.Error; e == nil || e.Code != crosswire.CodeUnavailable || !e.Retryable || e.RetryAfter == nil ||
		*e.RetryAfter != 0.01 || e.Message != "transient failure on attempt 2" {
		t.Errorf("fail_transient attempt 2: %+v", r.Error)
	}
	if r := check(3, payload(t, "test.fail_transient", map[string]int{"fail_until": 3}, 3), 0); !r.OK {
		t.Errorf("fail_transient attempt 3: %+v", r.Error)
	}
	if r := check(4, payload(t, "test.fail_transient", nil, 1), 0); r.OK {
		t.Error("fail_transient without payload must use fail_until=3")
	}
	r = check(5, payload(t, "test.fail_permanent", nil, 1), 0)
	if e := r.Error; e == nil || e.Code != crosswire.CodeInvalidArgument || e.Retryable || e.Message != "permanent failure requested" {
		t.Errorf("fail_permanent: %+v", r.Error)
	}
	if r := check(6, payload(t, "test.sleep", map[string]int{"ms": 20}, 1), 0); !r.OK || r.DurationNS < uint64(20*time.Millisecond) {
		t.Errorf("short sleep: %+v", r)
	}
	deadline := uint64(time.Now().Add(80 * time.Millisecond).UnixMilli())
	if r := check(7, payload(t, "test.sleep", nil, 1), deadline); r.Error == nil || r.Error.Code != crosswire.CodeTimeout {
		t.Errorf("sleep past deadline: %+v", r)
	}
	in := payload(t, "test.emit", map[string]string{"k": "v"}, 1)
	in.CorrelationID = "corr-9"
	r = check(8, in, 0)
	if !r.OK || len(r.Emitted) != 1 {
		t.Fatalf("emit: %+v", r)
	}
	out, err := crosswire.DecodeEvent(r.Emitted[0])
	if err != nil {
		t.Fatal(err)
	}
	if out.Type != "test.emitted" || !bytes.Equal(out.Data, in.Data) || out.DataContentType != in.DataContentType ||
		out.CorrelationID != "corr-9" || out.CausationID != in.ID || out.Source != "testworker-go" {
		t.Errorf("emitted %+v", out)
	}
	var m map[string]string
	if err := msgpack.Unmarshal(out.Data, &m); err != nil || m["k"] != "v" {
		t.Errorf("emitted data %v %v", m, err)
	}
	if r := check(9, payload(t, "test.panic", nil, 1), 0); r.Error == nil || r.Error.Code != crosswire.CodeHandlerError || !r.Error.Retryable {
		t.Errorf("panic: %+v", r.Error)
	}
	if r := check(10, payload(t, "test.echo", nil, 1), 0); !r.OK {
		t.Errorf("echo after panic: %+v", r)
	}
	c.Send(t, crosswire.DrainFrame{})
	crosswiretest.Expect[crosswire.DrainedFrame](t, c)
	c.Send(t, crosswire.GoodbyeFrame{})
	c.C.Close()
	if code := p.wait(t); code != 0 {
		t.Errorf("exit %d after drain, stderr: %s", code, p.stderr.String())
	}
}

func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	p := spawn(t)
	p.conn.Handshake(t, crosswiretest.Welcome())
	p.conn.Deliver(t, 1, payload(t, "test.sleep", map[string]int{"ms": 300}, 1), 0)
	time.Sleep(50 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	frames := p.conn.Closed(t)
	if len(frames) != 3 {
		t.Fatalf("frames %#v", frames)
	}
	if r, ok := frames[0].(crosswire.ResultFrame); !ok || !r.OK || r.ID != 1 {
		t.Errorf("in-flight delivery not finished: %#v", frames[0])
	}
	_, drained := frames[1].(crosswire.DrainedFrame)
	_, goodbye := frames[2].(crosswire.GoodbyeFrame)
	if !drained || !goodbye {
		t.Errorf("want drained then goodbye, got %#v", frames[1:])
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("exit %d, stderr: %s", code, p.stderr.String())
	}
}

func TestVersionMismatchExitsWithReason(t *testing.T) {
	p := spawn(t, "--protocol-version", "2", "--name", "w2")
	hello := crosswiretest.Expect[crosswire.HelloFrame](t, p.conn)
	if len(hello.Versions) != 1 || hello.Versions[0] != 2 || hello.Name != "w2" {
		t.Fatalf("hello %+v", hello)
	}
	reason := "unsupported protocol versions: worker speaks [2], node speaks [1]"
	p.conn.Send(t, crosswire.RejectFrame{Reason: reason})
	p.conn.C.Close()
	if code := p.wait(t); code == 0 {
		t.Error("exit 0 after reject")
	}
	if got := strings.TrimSpace(p.stderr.String()); got != "crosswire: rejected by node: "+reason {
		t.Errorf("stderr %q", got)
	}
}

func TestOversizedFrameExitsWithReason(t *testing.T) {
	p := spawn(t)
	p.conn.Handshake(t, crosswiretest.Welcome())
	hdr := make([]byte, 4)
	binary.BigEndian.PutUint32(hdr, 0xffffffff)
	p.conn.SendRaw(t, hdr)
	if code := p.wait(t); code == 0 {
		t.Error("exit 0 after an oversized frame")
	}
	if got := strings.TrimSpace(p.stderr.String()); got != "crosswire: frame too large: 4294967295 bytes > max 1114112" {
		t.Errorf("stderr %q", got)
	}
}
