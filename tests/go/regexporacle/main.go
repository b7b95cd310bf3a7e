// Command regexporacle answers, with Go's own regexp package, what Go does with each
// pattern on each subject, for the test that holds Rotator's PCRE2 patterns to Go's
// behaviour (tests/t/22-go-regexp.t).
//
// Input (stdin): {"cases": [{"pattern": P, "template": T}], "subjects": [S...]}
// Output (stdout): one JSON object per case, in order:
//
//	{"pattern": P, "error": "..."}                  when Go rejects P
//	{"pattern": P, "results": [{"match": [start, end, ...] | null, "replaced": R}]}
//
// match holds FindStringSubmatchIndex (byte offsets, -1 for a group that did not take
// part), replaced is ReplaceAllString(S, T); one result per subject, in order.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
)

type testCase struct {
	Pattern  string `json:"pattern"`
	Template string `json:"template"`
}

type input struct {
	Cases    []testCase `json:"cases"`
	Subjects []string   `json:"subjects"`
}

type result struct {
	Match    []int  `json:"match"`
	Replaced string `json:"replaced"`
}

type answer struct {
	Pattern string   `json:"pattern"`
	Error   string   `json:"error,omitempty"`
	Results []result `json:"results,omitempty"`
}

func answerFor(c testCase, subjects []string) answer {
	re, err := regexp.Compile(c.Pattern)
	if err != nil {
		return answer{Pattern: c.Pattern, Error: err.Error()}
	}
	a := answer{Pattern: c.Pattern, Results: make([]result, 0, len(subjects))}
	for _, s := range subjects {
		a.Results = append(a.Results, result{Match: re.FindStringSubmatchIndex(s), Replaced: re.ReplaceAllString(s, c.Template)})
	}
	return a
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "regexporacle: stdin is not the expected JSON:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for _, c := range in.Cases {
		if err := enc.Encode(answerFor(c, in.Subjects)); err != nil {
			fmt.Fprintln(os.Stderr, "regexporacle:", err)
			os.Exit(1)
		}
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "regexporacle:", err)
		os.Exit(1)
	}
}
