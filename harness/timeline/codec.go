package timeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// FormatVersion is the version of the JSON Lines format Encode writes.
// Decode reads this version and older ones.
const FormatVersion = 2

// The saved format is JSON Lines: one header line, then one line per record,
// requests and events merged in offset order so that the file reads as a
// story. Offsets and latencies are integer nanoseconds (exact, unlike floats).
//
//	{"type":"timeline","version":1,"start":"2025-01-02T15:04:05.123456789Z","meta":{"scenario":"drain"},"requests":2,"events":1}
//	{"type":"event","at_ns":0,"kind":"PhaseStart","name":"baseline"}
//	{"type":"request","at_ns":1000000,"latency_ns":2100000,"code":200,"pod":"web-1","node":"kind-worker","ip":"10.244.1.3"}
//	{"type":"request","at_ns":2000000,"latency_ns":150000,"client":"service","err":"refused","error":"dial tcp 10.96.0.12:80: connect: connection refused"}
//
// A request line omits "err" on success and omits empty fields.
//
// Version 2 added the client kind, connection reuse, how the pod was known
// ("via") and the downstream error of requests, and the UID, client and value
// of events. Version 1 files read as requests of ClientUnknown.
type wireHeader struct {
	Type     string            `json:"type"`
	Version  int               `json:"version"`
	Start    time.Time         `json:"start"`
	Meta     map[string]string `json:"meta,omitempty"`
	NumReqs  int               `json:"requests"`
	NumEvent int               `json:"events"`
}

// wireLine is a record line, for decoding.
type wireLine struct {
	Type        string     `json:"type"`
	At          int64      `json:"at_ns"`
	Latency     int64      `json:"latency_ns"`
	Code        int        `json:"code"`
	Err         *ErrorKind `json:"err"`
	ErrText     string     `json:"error"`
	Pod         string     `json:"pod"`
	Node        string     `json:"node"`
	IP          string     `json:"ip"`
	Terminating bool       `json:"terminating"`
	Client      ClientKind `json:"client"`
	Reused      bool       `json:"reused"`
	Via         string     `json:"via"`
	Downstream  string     `json:"downstream"`
	Kind        *EventKind `json:"kind"`
	UID         string     `json:"uid"`
	Name        string     `json:"name"`
	Detail      string     `json:"detail"`
	Value       int64      `json:"value_ns"`
	ExitCode    *int       `json:"exit_code"`
	Reason      string     `json:"reason"`
}

const (
	lineHeader  = "timeline"
	lineRequest = "request"
	lineEvent   = "event"
)

// Encode writes the whole timeline as JSON Lines.
func (t *Timeline) Encode(w io.Writer) error {
	s := t.Snapshot()
	return s.Encode(w)
}

// Encode writes the snapshot as JSON Lines (see FormatVersion). Records must
// be sorted (Timeline.Snapshot's are).
func (s *Snapshot) Encode(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	hdr, err := json.Marshal(wireHeader{
		Type: lineHeader, Version: FormatVersion, Start: s.Start, Meta: s.Meta,
		NumReqs: len(s.Requests), NumEvent: len(s.Events),
	})
	if err != nil {
		return fmt.Errorf("timeline: encoding header: %w", err)
	}
	bw.Write(hdr)
	bw.WriteByte('\n')

	buf := make([]byte, 0, 512)
	i, j := 0, 0
	for i < len(s.Requests) || j < len(s.Events) {
		buf = buf[:0]
		// Events first on ties: a phase start at t covers a request sent at t.
		if j < len(s.Events) && (i == len(s.Requests) || s.Events[j].Offset <= s.Requests[i].Offset) {
			buf, err = appendEvent(buf, &s.Events[j])
			j++
		} else {
			buf = appendRequest(buf, &s.Requests[i])
			i++
		}
		if err != nil {
			return err
		}
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// appendRequest writes one request line. It is hand-written rather than
// encoding/json because requests are most of a timeline and reflection made
// saving an hour-long run take seconds; Decode reads it with encoding/json.
func appendRequest(b []byte, r *Request) []byte {
	b = append(b, `{"type":"request","at_ns":`...)
	b = strconv.AppendInt(b, int64(r.Offset), 10)
	b = append(b, `,"latency_ns":`...)
	b = strconv.AppendInt(b, int64(r.Latency), 10)
	if r.Client != ClientUnknown {
		b = append(b, `,"client":"`...)
		b = append(b, r.Client.String()...)
		b = append(b, '"')
	}
	if r.Reused {
		b = append(b, `,"reused":true`...)
	}
	if r.Code != 0 {
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(r.Code), 10)
	}
	if r.Err != ErrNone {
		b = append(b, `,"err":"`...)
		b = append(b, r.Err.String()...)
		b = append(b, '"')
	}
	b = appendField(b, "error", r.ErrText)
	b = appendField(b, "pod", r.Pod)
	b = appendField(b, "node", r.Node)
	b = appendField(b, "ip", r.PodIP)
	b = appendField(b, "via", r.Via.String())
	if r.Terminating {
		b = append(b, `,"terminating":true`...)
	}
	b = appendField(b, "downstream", r.Downstream)
	return append(b, '}')
}

func appendEvent(b []byte, e *Event) ([]byte, error) {
	if e.Kind == EvUnknown || e.Kind >= numEventKinds {
		return b, fmt.Errorf("timeline: event at %v has no valid kind (%d)", e.Offset, e.Kind)
	}
	b = append(b, `{"type":"event","at_ns":`...)
	b = strconv.AppendInt(b, int64(e.Offset), 10)
	b = append(b, `,"kind":"`...)
	b = append(b, e.Kind.String()...)
	b = append(b, '"')
	b = appendField(b, "pod", e.Pod)
	b = appendField(b, "node", e.Node)
	b = appendField(b, "ip", e.IP)
	b = appendField(b, "uid", e.UID)
	b = appendField(b, "name", e.Name)
	b = appendField(b, "detail", e.Detail)
	if e.Client != ClientUnknown {
		b = appendField(b, "client", e.Client.String())
	}
	if e.Value != 0 {
		b = append(b, `,"value_ns":`...)
		b = strconv.AppendInt(b, int64(e.Value), 10)
	}
	if e.ExitCode != nil {
		b = append(b, `,"exit_code":`...)
		b = strconv.AppendInt(b, int64(*e.ExitCode), 10)
	}
	b = appendField(b, "reason", e.Reason)
	return append(b, '}'), nil
}

func appendField(b []byte, key, val string) []byte {
	if val == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, val)
}

// appendString writes s as a JSON string: printable ASCII is copied as is
// (JSON needs no escaping of '<', '>' or '&'), anything else goes through
// encoding/json (which also replaces invalid UTF-8).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Decode reads a timeline written by Encode. The returned timeline has the
// saved start (without a monotonic reading) and metadata, and can be judged,
// rendered or appended to like a live one.
func Decode(r io.Reader) (*Timeline, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	return decodeLines(func(v any) (bool, error) {
		err := dec.Decode(v)
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return err == nil, err
	})
}

// MarshalJSON writes the timeline as a JSON array of the lines Encode
// writes (header first), so that a larger JSON document (the run record)
// can hold a timeline in the same format as timeline.jsonl.
func (t *Timeline) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	if err := t.Encode(&buf); err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
	// Lines hold no raw newline (JSON escapes them in strings), so each
	// newline is exactly a boundary between two records.
	for i, c := range b {
		if c == '\n' {
			b[i] = ','
		}
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads what MarshalJSON wrote into a timeline that must be
// empty (a zero Timeline is fine here).
func (t *Timeline) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return errors.New("timeline: want a JSON array of timeline records")
	}
	got, err := decodeLines(func(v any) (bool, error) {
		if !dec.More() {
			return false, nil
		}
		err := dec.Decode(v)
		return err == nil, err
	})
	if err != nil {
		return err
	}
	t.take(got)
	return nil
}

// decodeLines reads a header and records from next, which decodes the next
// value into its argument and reports false at the end of the input.
func decodeLines(next func(v any) (bool, error)) (*Timeline, error) {
	var hdr wireHeader
	if ok, err := next(&hdr); err != nil {
		return nil, fmt.Errorf("timeline: reading header: %w", err)
	} else if !ok {
		return nil, errors.New("timeline: empty input: no header line")
	}
	if hdr.Type != lineHeader {
		return nil, fmt.Errorf("timeline: first line has type %q, want %q: not a saved timeline", hdr.Type, lineHeader)
	}
	if hdr.Version < 1 || hdr.Version > FormatVersion {
		return nil, fmt.Errorf("timeline: format version %d; this build reads versions 1 to %d", hdr.Version, FormatVersion)
	}
	t := New(hdr.Start)
	for k, v := range hdr.Meta {
		t.meta[k] = v
	}
	if hdr.NumEvent > 0 {
		t.events = make([]Event, 0, hdr.NumEvent)
	}
	for line := 2; ; line++ {
		var l wireLine
		ok, err := next(&l)
		if err != nil {
			return nil, fmt.Errorf("timeline: record %d: %w", line, err)
		}
		if !ok {
			break
		}
		switch l.Type {
		case lineRequest:
			r, err := l.request(hdr.Version)
			if err != nil {
				return nil, fmt.Errorf("timeline: record %d: %w", line, err)
			}
			t.AddRequest(r)
		case lineEvent:
			e, err := l.event()
			if err != nil {
				return nil, fmt.Errorf("timeline: record %d: %w", line, err)
			}
			t.AddEvent(e)
		default:
			return nil, fmt.Errorf("timeline: record %d: unknown type %q", line, l.Type)
		}
	}
	return t, nil
}

// request is a request line's record; version is the format's.
func (l *wireLine) request(version int) (Request, error) {
	r := Request{
		Offset: time.Duration(l.At), Latency: time.Duration(l.Latency), Code: l.Code,
		ErrText: l.ErrText, Pod: l.Pod, Node: l.Node, PodIP: l.IP, Terminating: l.Terminating,
		Client: l.Client, Reused: l.Reused, Downstream: l.Downstream,
	}
	if l.Err != nil {
		r.Err = *l.Err
	}
	var err error
	if r.Via, err = ParseVia(l.Via); err != nil {
		return r, err
	}
	if version == 1 && r.Attributed() {
		r.Via = ViaHeaders // version 1 knew pods only from headers
	}
	return r, nil
}

// event is an event line's record.
func (l *wireLine) event() (Event, error) {
	if l.Kind == nil {
		return Event{}, errors.New("event without a kind")
	}
	return Event{
		Offset: time.Duration(l.At), Kind: *l.Kind, Pod: l.Pod, Node: l.Node, IP: l.IP, UID: l.UID,
		Name: l.Name, Detail: l.Detail, ExitCode: l.ExitCode, Reason: l.Reason,
		Client: l.Client, Value: time.Duration(l.Value),
	}, nil
}
