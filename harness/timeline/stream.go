package timeline

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// StreamWriter writes a timeline while it is recorded, in the saved format
// (see Encode): the header first, then each record as it comes, one line
// each. A load generator running in a pod sends its results this way,
// through its log, to the harness that reads them with ReadStream.
type StreamWriter struct {
	mu  sync.Mutex
	w   *bufio.Writer
	buf []byte
}

// NewStreamWriter writes the header of a timeline that starts at start.
// Its record counts are unknown, so written as zero.
func NewStreamWriter(w io.Writer, start time.Time, meta map[string]string) (*StreamWriter, error) {
	hdr, err := json.Marshal(wireHeader{Type: lineHeader, Version: FormatVersion, Start: start, Meta: meta})
	if err != nil {
		return nil, fmt.Errorf("timeline: encoding header: %w", err)
	}
	s := &StreamWriter{w: bufio.NewWriter(w)}
	s.w.Write(hdr)
	s.w.WriteByte('\n')
	return s, s.w.Flush()
}

// Requests writes requests, one line each, and flushes.
func (s *StreamWriter) Requests(rs []Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range rs {
		s.buf = append(appendRequest(s.buf[:0], &rs[i]), '\n')
		if _, err := s.w.Write(s.buf); err != nil {
			return err
		}
	}
	return s.w.Flush()
}

// Event writes one event and flushes.
func (s *StreamWriter) Event(e Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := appendEvent(s.buf[:0], &e)
	if err != nil {
		return err
	}
	s.buf = append(b, '\n')
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	return s.w.Flush()
}

// Stream is what ReadStream calls with what it reads.
type Stream struct {
	Header  func(start time.Time, meta map[string]string) error
	Request func(Request)
	Event   func(Event)
}

// ReadStream reads what a StreamWriter writes (or a saved timeline) as it
// arrives, until r ends. Lines that are not timeline records (what else a
// program logged) are skipped; a record that does not read is an error.
func ReadStream(r io.Reader, s Stream) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	version := 0
	for sc.Scan() {
		b := sc.Bytes()
		if len(b) == 0 || b[0] != '{' {
			continue
		}
		if version == 0 {
			var hdr wireHeader
			if err := json.Unmarshal(b, &hdr); err != nil || hdr.Type != lineHeader {
				continue
			}
			if hdr.Version < 1 || hdr.Version > FormatVersion {
				return fmt.Errorf("timeline: stream format version %d; this build reads versions 1 to %d", hdr.Version, FormatVersion)
			}
			version = hdr.Version
			if s.Header != nil {
				if err := s.Header(hdr.Start, hdr.Meta); err != nil {
					return err
				}
			}
			continue
		}
		var l wireLine
		if err := json.Unmarshal(b, &l); err != nil {
			return fmt.Errorf("timeline: stream record %q: %w", b, err)
		}
		switch l.Type {
		case lineRequest:
			req, err := l.request(version)
			if err != nil {
				return err
			}
			if s.Request != nil {
				s.Request(req)
			}
		case lineEvent:
			ev, err := l.event()
			if err != nil {
				return err
			}
			if s.Event != nil {
				s.Event(ev)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if version == 0 {
		return errors.New("timeline: the stream ended before its header")
	}
	return nil
}
