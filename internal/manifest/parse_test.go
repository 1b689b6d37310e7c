package manifest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSplitDocuments(t *testing.T) {
	type doc struct {
		text      string
		firstLine int
	}
	tests := []struct {
		name  string
		input string
		want  []doc
	}{
		{"a single document is one document", "a: 1\n", []doc{{"a: 1\n", 1}}},
		{"a leading marker leaves an empty first document", "---\na: 1\n", []doc{{"", 1}, {"\na: 1\n", 1}}},
		{"markers with blanks and comments split", "a: 1\n---  # next\nb: 2\n--- \t\nc: 3",
			[]doc{{"a: 1\n", 1}, {"\nb: 2\n", 2}, {"\nc: 3", 4}}},
		{"a CRLF marker splits", "a: 1\r\n---\r\nb: 2\r\n", []doc{{"a: 1\r\n", 1}, {"\nb: 2\r\n", 2}}},
		{"four dashes, an indented marker and content after the marker do not split",
			"a: |\n  ---\nb: ----\n--- {c: 3}\n", []doc{{"a: |\n  ---\nb: ----\n--- {c: 3}\n", 1}}},
		{"a final marker without a newline ends with an empty document", "a: 1\n---", []doc{{"a: 1\n", 1}, {"", 2}}},
		{"empty input is one empty document", "", []doc{{"", 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []doc
			for _, d := range splitDocuments([]byte(tc.input)) {
				got = append(got, doc{string(d.text), d.firstLine})
			}
			require.Equal(t, tc.want, got)
		})
	}
}
