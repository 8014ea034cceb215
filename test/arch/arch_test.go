package arch

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Doc        string
	Deps       []string
	Name       string
}

func list(t *testing.T) []pkg {
	out, err := exec.Command("go", "list", "-deps=false", "-json", "github.com/openvpc/openvpc/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

const module = "github.com/openvpc/openvpc/"

// TestImportRules: the data plane (host/, edge/, packet/) never reaches
// into the control plane or etcd; packet/ is stdlib only; only
// control/store imports etcd.
func TestImportRules(t *testing.T) {
	for _, p := range list(t) {
		rel := strings.TrimPrefix(p.ImportPath, module)
		dataPlane := strings.HasPrefix(rel, "host/") || strings.HasPrefix(rel, "edge/") || rel == "packet"
		for _, d := range p.Deps {
			etcd := strings.HasPrefix(d, "go.etcd.io/")
			switch {
			case dataPlane && (etcd || strings.HasPrefix(d, module+"control/")):
				t.Errorf("%s imports %s: the data plane must not depend on the control plane", rel, d)
			case rel == "packet" && strings.Contains(strings.SplitN(d, "/", 2)[0], "."):
				t.Errorf("packet imports %s: packet/ is stdlib only", d)
			}
		}
	}
	// Direct imports of etcd, outside the store.
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "github.com/openvpc/openvpc/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] == module+"control/store" {
			continue
		}
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, "go.etcd.io/") {
				t.Errorf("%s imports %s: only control/store may import etcd", fields[0], imp)
			}
		}
	}
}

// TestPackageDocs: every package says its job in a doc comment.
func TestPackageDocs(t *testing.T) {
	for _, p := range list(t) {
		if strings.Contains(p.ImportPath, "/gen/") {
			continue
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment", p.ImportPath)
		}
	}
}
