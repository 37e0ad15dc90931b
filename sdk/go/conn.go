package crosswire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// FrameReader reads frames from a stream. It checks each 4-byte header against
// its maximum before allocating the body. Not safe for concurrent use.
type FrameReader struct {
	r   *bufio.Reader
	max int
	hdr [frameHeaderBytes]byte
}

// NewFrameReader reads frames whose body is at most max bytes.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64*1024), max: max}
}

// SetMax changes the largest body accepted from now on.
func (fr *FrameReader) SetMax(max int) { fr.max = max }

// ReadFrame reads one frame.
//
// It returns io.EOF at a clean end of stream (no partial frame), io.ErrUnexpectedEOF
// inside a frame, a *FrameError (too_large, empty, malformed, invalid), or a
// read error.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, err
	}
	n, err := checkFrameHeader(fr.hdr[:], fr.max)
	if err != nil {
		return nil, err
	}
	body := make([]byte, n) // n ≤ max: checked above
	if _, err := io.ReadFull(fr.r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return DecodeFrameBody(body)
}

// frameWriter owns the write side of a connection: one goroutine takes
// encoded frames from a queue and writes them through a buffer that is flushed
// only when the queue is empty, so bursts of results leave in few writes.
type frameWriter struct {
	conn     net.Conn
	queue    chan []byte
	done     chan struct{}
	err      error // set before done is closed
	lastSent atomic.Int64
	once     sync.Once
}

func newFrameWriter(conn net.Conn, depth int) *frameWriter {
	w := &frameWriter{conn: conn, queue: make(chan []byte, depth), done: make(chan struct{})}
	w.lastSent.Store(time.Now().UnixNano())
	go w.loop()
	return w
}

func (w *frameWriter) loop() {
	defer close(w.done)
	bw := bufio.NewWriterSize(w.conn, 64*1024)
	for b := range w.queue {
		if _, err := bw.Write(b); err != nil {
			w.fail(err)
			return
		}
		for more := true; more; {
			select {
			case b, ok := <-w.queue:
				if !ok {
					more = false
					break
				}
				if _, err := bw.Write(b); err != nil {
					w.fail(err)
					return
				}
			default:
				more = false
			}
		}
		if err := bw.Flush(); err != nil {
			w.fail(err)
			return
		}
		w.lastSent.Store(time.Now().UnixNano())
	}
	if err := bw.Flush(); err != nil {
		w.fail(err)
	}
}

func (w *frameWriter) fail(err error) {
	w.err = err
	// Keep draining so senders never block on a dead connection.
	go func() {
		for range w.queue { // discard
		}
	}()
}

// send queues one frame; it blocks while the queue is full (backpressure).
func (w *frameWriter) send(f Frame) {
	var buf bytes.Buffer
	AppendFrame(&buf, f)
	w.queue <- buf.Bytes()
}

// sendEncoded queues an already encoded frame.
func (w *frameWriter) sendEncoded(b []byte) { w.queue <- b }

// close stops accepting frames and waits up to timeout for the queue to be written.
func (w *frameWriter) close(timeout time.Duration) {
	w.once.Do(func() { close(w.queue) })
	select {
	case <-w.done:
	case <-time.After(timeout):
	}
}

func frameBodyLen(b []byte) int { return int(binary.BigEndian.Uint32(b[:4])) }
