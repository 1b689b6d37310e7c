package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// DefaultMaxFileSize bounds one input file. The API server refuses objects over ~1.5 MiB, so a
// larger manifest is a whole rendered chart at most; 32 MiB leaves room for that and still
// refuses a stray artefact before it is read into memory.
const DefaultMaxFileSize = 32 << 20

// Stdin is the path that reads standard input.
const Stdin = "-"

// ErrNoFiles is returned when the paths given hold no YAML or JSON file at all.
var ErrNoFiles = errors.New("no .yaml, .yml or .json files found")

// Loader reads Istio objects from files, directories and standard input.
type Loader struct {
	// MaxFileSize bounds each file; 0 means DefaultMaxFileSize.
	MaxFileSize int64
	// Stdin is read for the path "-".
	Stdin io.Reader
	// Skip, when set, leaves out a path (a file or directory, given or found while walking),
	// for --ignore and for Helm chart templates.
	Skip func(path string, isDir bool) bool
}

// Result is what a load found: the objects to check, the documents that could not be checked,
// and the directory cycles that were skipped.
type Result struct {
	Objects  []*Object
	Problems []*Problem
	Files    int
	// Paths are the files read, in order ("-" for standard input).
	Paths   []string
	Skipped []string
}

// Load reads every path. It returns an error only for paths that cannot be read at all (missing,
// unreadable, a symlink loop); what is wrong inside a file is a Problem.
func (l Loader) Load(paths []string) (*Result, error) {
	res := &Result{}
	var files []string
	var errs []error
	for _, p := range paths {
		if p == Stdin {
			files = append(files, Stdin)
			continue
		}
		if l.Skip != nil {
			if info, err := os.Stat(p); err == nil && l.Skip(p, info.IsDir()) {
				continue
			}
		}
		found, skipped, err := walk(p, l.Skip)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(found) == 0 {
			errs = append(errs, fmt.Errorf("read %s: %w", p, ErrNoFiles))
		}
		files = append(files, found...)
		res.Skipped = append(res.Skipped, skipped...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	res.Files = len(files)
	res.Paths = files

	// Parse files in parallel; results keep the order of the files.
	type fileResult struct {
		objects  []*Object
		problems []*Problem
		err      error
	}
	out := make([]fileResult, len(files))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				data, err := l.read(files[i])
				if err != nil {
					out[i].err = err
					continue
				}
				out[i].objects, out[i].problems = parseFile(files[i], data)
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, r := range out {
		if r.err != nil {
			errs = append(errs, r.err)
		}
		res.Objects = append(res.Objects, r.objects...)
		res.Problems = append(res.Problems, r.problems...)
	}
	return res, errors.Join(errs...)
}

func (l Loader) read(path string) ([]byte, error) {
	limit := l.MaxFileSize
	if limit <= 0 {
		limit = DefaultMaxFileSize
	}
	var r io.Reader
	name := path
	if path == Stdin {
		if l.Stdin == nil {
			return nil, fmt.Errorf("read standard input: not available")
		}
		r, name = l.Stdin, "standard input"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: larger than the %d MiB limit (--max-file-size)", name, limit>>20)
	}
	return data, nil
}

// walk lists the YAML and JSON files under root, following symbolic links but visiting each
// directory once, so a link back to an ancestor is skipped instead of looping.
func walk(root string, skip func(string, bool) bool) (files, skipped []string, err error) {
	info, err := os.Stat(root)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", root, err)
	}
	if skip == nil {
		skip = func(string, bool) bool { return false }
	}
	if !info.IsDir() {
		return []string{root}, nil, nil
	}
	seen := map[string]bool{}
	var visit func(dir string) error
	visit = func(dir string) error {
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return fmt.Errorf("read %s: %w", dir, err)
		}
		if seen[real] {
			skipped = append(skipped, fmt.Sprintf("%s: directory already read as %s (symlink cycle)", dir, real))
			return nil
		}
		seen[real] = true
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("read %s: %w", dir, err)
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			mode := e.Type()
			if mode&fs.ModeSymlink != 0 {
				st, err := os.Stat(p)
				if err != nil {
					// A dangling link or a link that loops on itself.
					return fmt.Errorf("read %s: %w", p, err)
				}
				mode = st.Mode().Type()
			}
			switch {
			case skip(p, mode.IsDir()):
			case mode.IsDir():
				if strings.HasPrefix(e.Name(), ".") && e.Name() != "." {
					continue // .git and friends
				}
				if err := visit(p); err != nil {
					return err
				}
			case mode.IsRegular() && isManifest(e.Name()):
				files = append(files, p)
			}
		}
		return nil
	}
	if err := visit(root); err != nil {
		return nil, nil, err
	}
	sort.Strings(files)
	return files, skipped, nil
}

func isManifest(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// Parse reads every document of one file's content; name is used in positions.
func Parse(name string, data []byte) ([]*Object, []*Problem) { return parseFile(name, data) }

// parseFile reads every document of one file.
func parseFile(file string, data []byte) ([]*Object, []*Problem) {
	display := file
	if file == Stdin {
		display = "<stdin>"
	}
	if bytes.IndexByte(data[:min(len(data), 8192)], 0) >= 0 || !utf8.Valid(data[:min(len(data), 8192)]) {
		return nil, []*Problem{{File: display, Line: 1, Message: "not a text file (binary content); expected YAML or JSON"}}
	}
	var objects []*Object
	var problems []*Problem
	for _, doc := range splitDocuments(data) {
		node, line, v, p := parseDocument(doc)
		if p != nil {
			p.File = display
			problems = append(problems, p)
			continue
		}
		if v == nil {
			continue
		}
		objs, probs := objectsOf(v, source{node: node, text: doc.text, line: line, file: display, offset: doc.firstLine - 1})
		objects = append(objects, objs...)
		problems = append(problems, probs...)
	}
	return objects, problems
}

// listItems returns the items of a `kind: List` document (and of any *List kind with items, as
// kubectl reads them).
func listItems(v any) ([]any, bool) {
	m, _ := v.(map[string]any)
	if kind, _ := m["kind"].(string); strings.HasSuffix(kind, "List") {
		items, ok := m["items"].([]any)
		return items, ok
	}
	return nil, false
}

// objectsOf turns one document into objects, unwrapping a list of them.
func objectsOf(v any, src source) ([]*Object, []*Problem) {
	m, ok := v.(map[string]any)
	if !ok {
		// A top-level list or scalar is not a Kubernetes object; nothing to check.
		return nil, nil
	}
	if items, ok := listItems(v); ok {
		var objects []*Object
		var problems []*Problem
		itemsNode := child(src.node, "items")
		for i, it := range items {
			o, ok := it.(map[string]any)
			if !ok {
				continue
			}
			item := source{file: src.file, offset: src.offset, line: src.line}
			if item.node = child(itemsNode, fmt.Sprint(i)); item.node != nil {
				item.line = item.node.Line
			}
			obj, p := fromRaw(o, item)
			if p != nil {
				problems = append(problems, p)
			} else if obj != nil {
				objects = append(objects, obj)
			}
		}
		return objects, problems
	}
	obj, p := fromRaw(m, src)
	if p != nil {
		return nil, []*Problem{p}
	}
	if obj == nil {
		return nil, nil
	}
	return []*Object{obj}, nil
}
