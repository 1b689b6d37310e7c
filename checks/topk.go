package checks

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// topkTransport keeps a backend that ignores topk from bringing a whole answer into memory. An
// instant query bounded with topk(k, ...) is answered with at most k series: when more arrive,
// the answer is read as a stream and only the k with the highest values are passed on, as topk
// would have chosen them. Other requests and answers pass untouched.
type topkTransport struct{ next http.RoundTripper }

// topkPrefix reads k from a query boundedQuery wrote.
var topkPrefix = regexp.MustCompile(`^topk\((\d+),`)

func (t topkTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(r.URL.Path, "/api/v1/query") {
		return t.next.RoundTrip(r)
	}
	query := r.URL.Query().Get("query")
	if r.Body != nil && r.Method == http.MethodPost {
		// client_golang posts the query as a form; the request is cloned, never changed.
		body, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read query: %w", err)
		}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		if form, err := url.ParseQuery(string(body)); err == nil && form.Has("query") {
			query = form.Get("query")
		}
	}
	m := topkPrefix.FindStringSubmatch(query)
	resp, err := t.next.RoundTrip(r)
	if err != nil || m == nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	k, err := strconv.Atoi(m[1])
	if err != nil {
		return resp, nil
	}
	defer resp.Body.Close()
	kept, err := topkAnswer(resp.Body, k)
	if err != nil {
		return nil, fmt.Errorf("read the answer to %s: %w", query, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(kept))
	resp.ContentLength = int64(len(kept))
	resp.Header.Del("Content-Length")
	resp.Header.Del("Content-Encoding")
	return resp, nil
}

// rawSample is one series of an answer, kept as its JSON.
type rawSample struct {
	value float64
	json  json.RawMessage
}

// sampleHeap is a min-heap by value: its root is the first series to give up.
type sampleHeap []rawSample

func (h sampleHeap) Len() int           { return len(h) }
func (h sampleHeap) Less(i, j int) bool { return h[i].value < h[j].value }
func (h sampleHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *sampleHeap) Push(x any)        { *h = append(*h, x.(rawSample)) }
func (h *sampleHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// topkAnswer reads a query API answer and writes it again with at most k series in
// data.result, one at a time from the stream: memory holds k series, not the answer.
func topkAnswer(r io.Reader, k int) ([]byte, error) {
	dec := json.NewDecoder(r)
	out := map[string]json.RawMessage{}
	data := map[string]json.RawMessage{}
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if key != "data" {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, err
			}
			out[fmt.Sprint(key)] = raw
			continue
		}
		if err := expectDelim(dec, '{'); err != nil {
			return nil, err
		}
		for dec.More() {
			dkey, err := dec.Token()
			if err != nil {
				return nil, err
			}
			if dkey != "result" {
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					return nil, err
				}
				data[fmt.Sprint(dkey)] = raw
				continue
			}
			result, err := topkResult(dec, k)
			if err != nil {
				return nil, err
			}
			data["result"] = result
		}
		if err := expectDelim(dec, '}'); err != nil {
			return nil, err
		}
	}
	d, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	out["data"] = d
	return json.Marshal(out)
}

// topkResult reads the result array and keeps the k series with the highest values. Values are
// only read once a (k+1)th series arrives: an answer within the bound, the usual case, is passed
// on as it came, without decoding each series twice.
func topkResult(dec *json.Decoder, k int) (json.RawMessage, error) {
	if err := expectDelim(dec, '['); err != nil {
		return nil, err
	}
	var pending []json.RawMessage
	var h *sampleHeap
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if h == nil {
			if len(pending) < k {
				pending = append(pending, raw)
				continue
			}
			h = &sampleHeap{}
			for _, p := range pending {
				v, err := sampleValue(p)
				if err != nil {
					return nil, err
				}
				heap.Push(h, rawSample{value: v, json: p})
			}
			pending = nil
		}
		v, err := sampleValue(raw)
		if err != nil {
			return nil, err
		}
		if k > 0 && v > (*h)[0].value {
			(*h)[0] = rawSample{value: v, json: raw}
			heap.Fix(h, 0)
		}
	}
	if err := expectDelim(dec, ']'); err != nil {
		return nil, err
	}
	if h != nil {
		for _, s := range *h {
			pending = append(pending, s.json)
		}
	}
	if pending == nil {
		pending = []json.RawMessage{}
	}
	return json.Marshal(pending)
}

// sampleValue reads the value of one series of a vector answer; NaN and unreadable values sort
// lowest.
func sampleValue(raw json.RawMessage) (float64, error) {
	var s struct {
		Value [2]json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, err
	}
	var text string
	if err := json.Unmarshal(s.Value[1], &text); err != nil {
		return 0, fmt.Errorf("sample value: %w", err)
	}
	v, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(v) {
		v = math.Inf(-1)
	}
	return v, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return errors.New("answer is not a Prometheus query API document: want " + want.String())
	}
	return nil
}
