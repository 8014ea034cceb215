package arch

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Doc        string
	Imports    []string
}

// list returns every package of the module and, with deps, every package
// they import, each with its direct imports.
func list(t *testing.T, deps bool) []pkg {
	args := []string{"list", "-json=ImportPath,Doc,Imports"}
	if deps {
		args = append(args, "-deps")
	}
	out, err := exec.Command("go", append(args, "github.com/openvpc/openvpc/...")...).Output()
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

// rule forbids the packages matching pkg (a path relative to the module;
// "x/..." is x and everything under it) to import, directly or through
// any chain of imports, a package matching one of never. A pattern
// without a dot in its first element is the module's; "etcd" stands for
// go.etcd.io/...; "non-stdlib" for anything outside the standard library.
// except lists what the pattern would catch but is allowed, with why.
type rule struct {
	pkg    string
	never  []string
	except []string
	why    string
}

// rules is DESIGN.md §8 and issue 13, as a table.
var rules = []rule{
	{pkg: "host/...", never: []string{"control/...", "etcd"}, why: "the data plane never depends on the control plane"},
	{pkg: "edge/...", never: []string{"control/...", "etcd"}, why: "the data plane never depends on the control plane"},
	{pkg: "edge/...", never: []string{"host/..."}, except: []string{"host/tables"},
		why: "an edge composes node, not a host agent; it shares only the lookup tables of its cache"},
	{pkg: "packet/...", never: []string{"control/...", "etcd"}, why: "the data plane never depends on the control plane"},
	{pkg: "packet", never: []string{"non-stdlib"}, why: "packet views are stdlib only"},
	{pkg: "control/...", never: []string{"host/...", "edge/...", "node"},
		why: "the control plane does not depend on the data plane; what both speak (node/forward) is a package of its own"},
	{pkg: "datapath/...", never: []string{"host/...", "edge/...", "control/...", "node/..."},
		why: "the data-path vocabulary is neutral: both data planes import it"},
	{pkg: "node/...", never: []string{"host/dataplane/...", "host/nic/...", "host/agent/...", "edge/...", "control/...", "etcd"},
		why: "what hosts and edges share knows neither role's data plane, nor the control plane"},
	{pkg: "node/forward", never: []string{"non-stdlib"}, why: "the forward protocol is imported by servers and clients alike: keep it small"},
	{pkg: "...", never: []string{"etcd"}, except: []string{"control/store"}, why: "only control/store imports etcd (others reach it through the store)"},
}

// TestImportRules: every rule holds for every package; a broken rule names
// the chain of imports that breaks it.
func TestImportRules(t *testing.T) {
	all := list(t, true)
	imports := map[string][]string{}
	for _, p := range all {
		imports[p.ImportPath] = p.Imports
	}
	for _, r := range rules {
		for _, p := range all {
			rel, own := strings.CutPrefix(p.ImportPath, module)
			if !own || !match(r.pkg, rel) || slices.Contains(r.except, rel) {
				continue
			}
			if r.pkg == "..." {
				// Only direct imports: etcd comes in through the store.
				for _, imp := range p.Imports {
					if forbidden(r, imp) {
						t.Errorf("%s imports %s: %s", rel, imp, r.why)
					}
				}
				continue
			}
			if chain := find(p.ImportPath, imports, func(imp string) bool { return forbidden(r, imp) }); chain != nil {
				t.Errorf("%s must not import %s: %s\n\t%s", rel, chain[len(chain)-1], r.why, strings.Join(chain, "\n\t→ "))
			}
		}
	}
}

// forbidden reports whether imp breaks rule r.
func forbidden(r rule, imp string) bool {
	rel, own := strings.CutPrefix(imp, module)
	if own && slices.Contains(r.except, rel) {
		return false
	}
	for _, n := range r.never {
		switch {
		case n == "etcd":
			// bbolt lives under go.etcd.io but is a file database, not
			// etcd: the object store keeps its objects in one.
			if strings.HasPrefix(imp, "go.etcd.io/") && !strings.HasPrefix(imp, "go.etcd.io/bbolt") {
				return true
			}
		case n == "non-stdlib":
			if strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				return true
			}
		case own && match(n, rel):
			return true
		}
	}
	return false
}

// match reports whether rel (a module-relative path) matches pattern.
func match(pattern, rel string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pattern
}

// find returns the shortest chain of imports from pkg to a package bad
// accepts, or nil. Packages outside the module are followed too: a
// third-party package could bring in a forbidden one.
func find(pkg string, imports map[string][]string, bad func(string) bool) []string {
	prev := map[string]string{pkg: ""}
	queue := []string{pkg}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, imp := range imports[cur] {
			if _, seen := prev[imp]; seen {
				continue
			}
			prev[imp] = cur
			if bad(imp) {
				var chain []string
				for at := imp; at != ""; at = prev[at] {
					chain = append(chain, strings.TrimPrefix(at, module))
				}
				slices.Reverse(chain)
				return chain
			}
			queue = append(queue, imp)
		}
	}
	return nil
}

// TestPackageDocs: every package says its job in a doc comment.
func TestPackageDocs(t *testing.T) {
	for _, p := range list(t, false) {
		if strings.Contains(p.ImportPath, "/gen/") {
			continue
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment", p.ImportPath)
		}
	}
}

// TestRulesCatchChains: the table catches a forbidden import made through
// other packages, third-party ones included, and names the whole chain;
// an allowed exception is not reported.
func TestRulesCatchChains(t *testing.T) {
	imports := map[string][]string{
		module + "edge":        {module + "host/tables", "example.com/lib"},
		module + "host/tables": {"net/netip"},
		"example.com/lib":      {module + "host/agent"},
		module + "host/agent":  {module + "node"},
	}
	i := slices.IndexFunc(rules, func(r rule) bool { return r.pkg == "edge/..." && slices.Contains(r.never, "host/...") })
	if i < 0 || !slices.Contains(rules[i].except, "host/tables") {
		t.Fatal("no rule keeps edge/ from host/ but for host/tables")
	}
	edgeRule := rules[i]
	chain := find(module+"edge", imports, func(imp string) bool { return forbidden(edgeRule, imp) })
	if want := []string{"edge", "example.com/lib", "host/agent"}; !slices.Equal(chain, want) {
		t.Fatalf("chain %v, want %v", chain, want)
	}
	delete(imports, "example.com/lib")
	imports[module+"edge"] = []string{module + "host/tables"}
	if chain := find(module+"edge", imports, func(imp string) bool { return forbidden(edgeRule, imp) }); chain != nil {
		t.Fatalf("host/tables is allowed to edge, yet %v", chain)
	}
}
