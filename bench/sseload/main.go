// sseload holds many Server-Sent Events streams open against the Kubernel API and
// timestamps every lifecycle message, so that make bench measures the server's
// fan-out and not the cost of its own subscribers (issue #17).
//
// It reads signed HTTP request heads from a file, one per stream (each ends with
// an empty line; a signature is good once: the API's replay cache), and sends
// stream i head i (HTTP/1.0: the body is the bare stream, no chunked encoding). It
// never decodes a message's JSON: it takes the `event:` line and the sessionId
// out of the `data:` line as bytes.
//
// Protocol: one JSON object per line on stdout and stdin.
//
//	out {"event":"open","subscribers":N}        once every stream answered 200
//	in  {"cmd":"wait","keys":["<sessionId> <event>",...],"timeout":S}
//	out {"event":"complete","ok":true,"seconds":S}   every subscriber has every key
//	in  {"cmd":"delays","recorded":{"<sessionId> <event>":<unix seconds>,...}}
//	out {"event":"delays","messages":M,"p50_ms":...,"p99_ms":...,"max_ms":...,
//	     "spread_p50_ms":...,"spread_p99_ms":...,"ended":E}
//
// Delays are from the time the operator recorded in the lifecycle entry; the
// spread is from the first subscriber's receipt of the same message.
//
//	in  {"cmd":"close"}                         closes every stream and exits
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// keys interns "<sessionId> <event>" strings as small integers shared by all streams.
type keys struct {
	mu    sync.Mutex
	ids   map[string]int32
	names []string
}

func (k *keys) id(session, event []byte) int32 {
	name := make([]byte, 0, len(session)+1+len(event))
	name = append(append(append(name, session...), ' '), event...)
	k.mu.Lock()
	defer k.mu.Unlock()
	if id, ok := k.ids[string(name)]; ok {
		return id
	}
	id := int32(len(k.names))
	k.ids[string(name)] = id
	k.names = append(k.names, string(name))
	return id
}

func (k *keys) lookup(name string) (int32, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id, ok := k.ids[name]
	return id, ok
}

// stream is one subscriber: when each message arrived (unix nanoseconds) and its key.
type stream struct {
	mu   sync.Mutex
	at   []int64
	key  []int32
	conn net.Conn
}

func (s *stream) record(at int64, key int32) {
	s.mu.Lock()
	s.at = append(s.at, at)
	s.key = append(s.key, key)
	s.mu.Unlock()
}

var (
	sessionField = []byte(`"sessionId":"`)
	ended        atomic.Int64
)

func open(addr string, head []byte) (*stream, *bufio.Reader, error) {
	conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, nil, err
	}
	if _, err := conn.Write(head); err != nil {
		conn.Close()
		return nil, nil, err
	}
	reader := bufio.NewReaderSize(conn, 16<<10)
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	status, err := reader.ReadString('\n')
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if !bytes.HasPrefix([]byte(status), []byte("HTTP/1.")) || len(status) < 12 || status[9:12] != "200" {
		conn.Close()
		return nil, nil, fmt.Errorf("stream answered %q", status)
	}
	for { // the rest of the head
		line, err := reader.ReadSlice('\n')
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
	}
	conn.SetReadDeadline(time.Time{})
	return &stream{conn: conn}, reader, nil
}

// follow reads messages until the connection ends.
func follow(s *stream, reader *bufio.Reader, k *keys) {
	defer ended.Add(1)
	var event, session []byte
	hasID := false
	for {
		line, err := reader.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// a data line longer than the buffer: only its start can hold the sessionId
			if session == nil && bytes.HasPrefix(line, []byte("data:")) {
				session = extract(line)
			}
			for err == bufio.ErrBufferFull {
				_, err = reader.ReadSlice('\n')
			}
			continue
		}
		if err != nil {
			return
		}
		switch {
		case len(line) == 1: // the blank line that ends a message
			if hasID && event != nil && session != nil {
				s.record(time.Now().UnixNano(), k.id(session, event))
			}
			event, session, hasID = nil, nil, false
		case bytes.HasPrefix(line, []byte("id:")):
			hasID = true
		case bytes.HasPrefix(line, []byte("event: ")):
			event = append(event[:0], bytes.TrimRight(line[7:], "\n")...)
		case bytes.HasPrefix(line, []byte("data:")):
			session = extract(line)
		}
	}
}

func extract(line []byte) []byte {
	at := bytes.Index(line, sessionField)
	if at < 0 {
		return nil
	}
	rest := line[at+len(sessionField):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil
	}
	return append([]byte(nil), rest[:end]...)
}

type command struct {
	Cmd      string             `json:"cmd"`
	Keys     []string           `json:"keys"`
	Timeout  float64            `json:"timeout"`
	Recorded map[string]float64 `json:"recorded"`
}

func say(out *json.Encoder, v map[string]any) {
	if err := out.Encode(v); err != nil {
		os.Exit(1)
	}
}

func complete(streams []*stream, wanted map[int32]bool) bool {
	for _, s := range streams {
		seen := map[int32]bool{}
		s.mu.Lock()
		for _, key := range s.key {
			if wanted[key] {
				seen[key] = true
			}
		}
		s.mu.Unlock()
		if len(seen) < len(wanted) {
			return false
		}
	}
	return true
}

func wait(streams []*stream, k *keys, names []string, timeout time.Duration) (bool, time.Duration) {
	began := time.Now()
	for time.Since(began) < timeout {
		wanted := map[int32]bool{}
		for _, name := range names {
			if id, ok := k.lookup(name); ok {
				wanted[id] = true
			}
		}
		if len(wanted) == len(names) && complete(streams, wanted) {
			return true, time.Since(began)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false, time.Since(began)
}

func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	at := int(q * float64(len(sorted)-1))
	return sorted[at]
}

func delays(streams []*stream, k *keys, recorded map[string]float64) map[string]any {
	byID := map[int32]int64{}
	for name, at := range recorded {
		if id, ok := k.lookup(name); ok {
			byID[id] = int64(at * 1e9)
		}
	}
	// The first arrival of each message at any subscriber: the spread after it is the
	// server's fan-out alone, without the way from the operator to the API.
	first := map[int32]int64{}
	for _, s := range streams {
		s.mu.Lock()
		for i, key := range s.key {
			if at, ok := first[key]; !ok || s.at[i] < at {
				first[key] = s.at[i]
			}
		}
		s.mu.Unlock()
	}
	var ms, spread []float64
	for _, s := range streams {
		s.mu.Lock()
		for i, key := range s.key {
			if at, ok := byID[key]; ok {
				ms = append(ms, float64(s.at[i]-at)/1e6)
				spread = append(spread, float64(s.at[i]-first[key])/1e6)
			}
		}
		s.mu.Unlock()
	}
	sort.Float64s(ms)
	sort.Float64s(spread)
	result := map[string]any{"event": "delays", "messages": len(ms), "ended": ended.Load()}
	for name, q := range map[string]float64{"p50": 0.5, "p95": 0.95, "p99": 0.99, "max": 1} {
		result[name+"_ms"] = percentile(ms, q)
		result["spread_"+name+"_ms"] = percentile(spread, q)
	}
	return result
}

// splitHeads cuts the file into request heads, each ending with its empty line.
func splitHeads(data []byte) [][]byte {
	var heads [][]byte
	for len(data) > 0 {
		end := bytes.Index(data, []byte("\r\n\r\n"))
		if end < 0 {
			break
		}
		heads = append(heads, data[:end+4])
		data = data[end+4:]
	}
	return heads
}

func main() {
	addr := flag.String("addr", "", "host:port of the API")
	count := flag.Int("n", 1000, "streams to open")
	headFile := flag.String("head", "", "file holding one signed request head per stream")
	parallel := flag.Int("parallel", 200, "streams being opened at once")
	flag.Parse()
	data, err := os.ReadFile(*headFile)
	if err != nil || *addr == "" {
		fmt.Fprintln(os.Stderr, "usage: sseload -addr HOST:PORT -n N -head FILE")
		os.Exit(2)
	}
	heads := splitHeads(data)
	if len(heads) != *count {
		fmt.Fprintf(os.Stderr, "sseload: %d heads for %d streams\n", len(heads), *count)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	k := &keys{ids: map[string]int32{}}
	streams := make([]*stream, *count)
	errs := make(chan error, *count)
	gate := make(chan struct{}, *parallel)
	var opening sync.WaitGroup
	for i := range streams {
		opening.Add(1)
		gate <- struct{}{}
		go func(i int) {
			defer opening.Done()
			s, reader, err := open(*addr, heads[i])
			<-gate
			if err != nil {
				errs <- err
				return
			}
			streams[i] = s
			go follow(s, reader, k)
		}(i)
	}
	opening.Wait()
	close(errs)
	if err := <-errs; err != nil {
		fmt.Fprintf(os.Stderr, "sseload: %d streams failed to open, the first: %v\n", len(errs)+1, err)
		os.Exit(1)
	}
	say(out, map[string]any{"event": "open", "subscribers": len(streams)})

	in := json.NewDecoder(bufio.NewReader(os.Stdin))
	for {
		var c command
		if err := in.Decode(&c); err != nil {
			if err != io.EOF {
				fmt.Fprintln(os.Stderr, "sseload: bad command:", err)
			}
			break
		}
		switch c.Cmd {
		case "wait":
			ok, took := wait(streams, k, c.Keys, time.Duration(c.Timeout*float64(time.Second)))
			say(out, map[string]any{"event": "complete", "ok": ok, "seconds": took.Seconds()})
		case "delays":
			say(out, delays(streams, k, c.Recorded))
		case "close":
			for _, s := range streams {
				s.conn.Close()
			}
			return
		default:
			fmt.Fprintln(os.Stderr, "sseload: unknown command", c.Cmd)
		}
	}
}
