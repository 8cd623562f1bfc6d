package command

import (
	"strings"
	"testing"

	"github.com/agenttls/agenttls/harness/matrix"
)

const url = "https://rancher.agenttls.test"

var sums = Checksums{Correct: "c0ffee", Wrong: "bad5ad"}

func cell(cs matrix.Checksum, sv matrix.StrictVerify, at matrix.StrictVerifyAt) matrix.Cell {
	return matrix.Cell{CA: matrix.CAPrivate, Mode: matrix.ModeStrict, Checksum: cs, StrictVerify: sv, Path: matrix.PathDirect, StrictVerifyAt: at}
}

func TestNodeCommandHasRancherShape(t *testing.T) {
	got := NodeCommand(url, "tok", "abc", nil)
	want := "curl -fL https://rancher.agenttls.test/system-agent-install.sh | sudo sh -s - --server https://rancher.agenttls.test --label 'cattle.io/os=linux' --token tok --ca-checksum abc"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if strings.Contains(NodeCommand(url, "tok", "", nil), "--ca-checksum") {
		t.Fatal("no cacerts must mean no --ca-checksum")
	}
	env := NodeCommand(url, "tok", "", []string{`HTTPS_PROXY="http://p:3128"`})
	if strings.Count(env, `HTTPS_PROXY="http://p:3128"`) != 2 {
		t.Fatalf("agent env vars go before curl and after sudo: %s", env)
	}
}

func TestForCell(t *testing.T) {
	base := NodeCommand(url, "tok", "served", nil)
	cases := []struct {
		c        matrix.Cell
		insecure bool
		has      []string
		lacks    []string
	}{
		{cell(matrix.ChecksumAbsent, matrix.StrictUnset, ""), false, []string{"--worker"}, []string{"--ca-checksum", "STRICT_VERIFY", "--insecure"}},
		{cell(matrix.ChecksumCorrect, matrix.StrictUnset, ""), true, []string{"--ca-checksum c0ffee", "curl --insecure -fL"}, []string{"served"}},
		{cell(matrix.ChecksumWrong, matrix.StrictFalse, ""), false, []string{"--ca-checksum bad5ad", "| sudo CATTLE_AGENT_STRICT_VERIFY=false sh -s -"}, nil},
		{cell(matrix.ChecksumEmpty, matrix.StrictTrue, matrix.AtCurl), false, []string{`--ca-checksum ""`, "CATTLE_AGENT_STRICT_VERIFY=true curl -fL"}, []string{"sudo CATTLE"}},
		{cell(matrix.ChecksumAbsent, matrix.StrictFalse, matrix.AtShLegacyName), false, []string{"| sudo STRICT_VERIFY=false sh -s -"}, []string{"CATTLE_AGENT_STRICT_VERIFY"}},
	}
	for _, tc := range cases {
		got, err := ForCell(base, tc.c, sums, tc.insecure)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range tc.has {
			if !strings.Contains(got, h) {
				t.Errorf("%s: %q lacks %q", tc.c.ID(), got, h)
			}
		}
		for _, l := range tc.lacks {
			if strings.Contains(got, l) {
				t.Errorf("%s: %q has %q", tc.c.ID(), got, l)
			}
		}
		if strings.Count(got, "--ca-checksum") > 1 {
			t.Errorf("%s: two checksum flags: %s", tc.c.ID(), got)
		}
	}
}

func TestForCellKeepsAGivenRole(t *testing.T) {
	got, err := ForCell(NodeCommand(url, "t", "", nil)+" --etcd --controlplane", cell(matrix.ChecksumAbsent, matrix.StrictUnset, ""), sums, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "--worker") {
		t.Fatalf("added a role to a command that had one: %s", got)
	}
}

func TestForCellRejectsOtherShapes(t *testing.T) {
	if _, err := ForCell("wget -O- x | bash", cell(matrix.ChecksumAbsent, matrix.StrictUnset, ""), sums, false); err == nil {
		t.Fatal("accepted a command that is not Rancher's shape")
	}
}
