package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/agenttls/agenttls/harness/k3d"
	"github.com/agenttls/agenttls/harness/node"
	"github.com/agenttls/agenttls/harness/sweep"
	"github.com/agenttls/agenttls/harness/testbed"
)

// Nodes hands out node containers to cells. By default a node is reused by later cells that
// need the same node image (the same system trust store): before each cell the runner wipes
// what the install script leaves (agent config, state, binaries, unit files, temp files) and
// points the Rancher hostname at the cell's target in /etc/hosts. Starting a container costs
// 0.5-2 s on this kind of machine, about as long as the script itself; the reset costs
// milliseconds. With fresh nodes, every cell gets a new container instead.
//
// A Nodes belongs to one process; cells on it run one at a time per node.
type Nodes struct {
	d     *testbed.Description
	fresh bool
	keep  bool

	mu   sync.Mutex
	idle map[string][]*Lease
	all  []*Lease
	seq  int
}

// Node is what the runner needs of a node container, whoever manages it (testcontainers for
// plain nodes, k3d for k3d nodes).
type Node interface {
	// ExecStream runs cmd as root, streaming lines, and stops it (and its process tree) when ctx
	// ends; see node.Node.ExecStream.
	ExecStream(ctx context.Context, cmd []string, stdout, stderr io.Writer) (int, error)
	IP(ctx context.Context, network string) (string, error)
	Terminate(ctx context.Context) error
}

// plainNode adapts a testcontainers node.
type plainNode struct{ *node.Node }

func (n plainNode) Terminate(ctx context.Context) error { return n.Node.Terminate(ctx) }

// Lease is one node lent to one cell.
type Lease struct {
	Node  Node
	IP    string
	image string
	// Started is how long it took to start the node (0 when reused).
	Started time.Duration
}

// NewNodes returns an empty pool for testbed d. fresh gives every cell a new container; keep
// leaves the containers running when the pool closes (debugging).
func NewNodes(d *testbed.Description, fresh, keep bool) *Nodes {
	return &Nodes{d: d, fresh: fresh, keep: keep, idle: map[string][]*Lease{}}
}

// Get returns a node from image img: an idle one, or a new one.
func (p *Nodes) Get(ctx context.Context, img string) (*Lease, error) {
	p.mu.Lock()
	if l := p.idle[img]; len(l) > 0 && !p.fresh {
		lease := l[len(l)-1]
		p.idle[img] = l[:len(l)-1]
		p.mu.Unlock()
		lease.Started = 0
		return lease, nil
	}
	p.seq++
	name := fmt.Sprintf("agenttls-%s-node-%d-%s", p.d.RunID, p.seq, randomSuffix())
	p.mu.Unlock()

	start := time.Now()
	n, err := p.start(ctx, img, name)
	lease := &Lease{Node: n, image: img}
	if n != nil {
		p.mu.Lock()
		p.all = append(p.all, lease)
		p.mu.Unlock()
	}
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	if lease.IP, err = n.IP(ctx, p.d.Network); err != nil {
		return nil, err
	}
	lease.Started = time.Since(start)
	return lease, nil
}

// start starts a node with the testbed's provider. It returns the node even with an error
// whenever a container was made, so that the pool removes it.
func (p *Nodes) start(ctx context.Context, img, name string) (Node, error) {
	labels := sweep.Labels(p.d.RunID)
	if p.d.Nodes == "k3d" {
		n, err := k3d.RunNode(ctx, img, k3d.WithName(name), k3d.WithNetwork(p.d.Network), k3d.WithLabels(labels),
			k3d.WithPrivileged(p.d.NodesPrivileged))
		if n == nil {
			return nil, err
		}
		return n, err
	}
	n, err := node.Run(ctx, img, node.WithNetwork(p.d.Network), node.WithLabels(labels), node.WithName(name))
	if n == nil {
		return nil, err
	}
	return plainNode{n}, err
}

// Put returns a node after its cell. A node whose cell went wrong in the harness (broken is
// true) is removed instead of reused.
func (p *Nodes) Put(ctx context.Context, l *Lease, broken bool) error {
	if l == nil {
		return nil
	}
	if p.fresh || broken {
		return p.remove(ctx, l)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idle[l.image] = append(p.idle[l.image], l)
	return nil
}

func (p *Nodes) remove(ctx context.Context, l *Lease) error {
	p.mu.Lock()
	for i, x := range p.all {
		if x == l {
			p.all = append(p.all[:i], p.all[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	if p.keep || l.Node == nil {
		return nil
	}
	return l.Node.Terminate(ctx)
}

// Close removes every node of the pool.
func (p *Nodes) Close(ctx context.Context) error {
	p.mu.Lock()
	all := p.all
	p.all, p.idle = nil, map[string][]*Lease{}
	p.mu.Unlock()
	if p.keep {
		return nil
	}
	var errs []error
	for _, l := range all {
		if l.Node != nil {
			if err := l.Node.Terminate(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// agentPaths is everything the install script creates on a node (its defaults).
var agentPaths = []string{
	"/etc/rancher", "/var/lib/rancher",
	"/usr/local/bin/rancher-system-agent", "/usr/local/bin/rancher-system-agent-uninstall.sh",
	"/etc/systemd/system/rancher-system-agent.service", "/etc/systemd/system/rancher-system-agent.env",
}

// prepare is the shell prelude of every cell: wipe what an earlier cell's script left, then
// resolve the Rancher hostname to the cell's target. /etc/hosts is a bind mount, so it is
// rewritten in place rather than replaced.
func prepare(hostname, ip string) string {
	return fmt.Sprintf(`rm -rf %s /tmp/tmp.* && `+
		`{ grep -v '[[:space:]]%s$' /etc/hosts; echo '%s %s'; } >/tmp/agenttls-hosts && cat /tmp/agenttls-hosts >/etc/hosts && rm -f /tmp/agenttls-hosts`,
		strings.Join(agentPaths, " "), hostname, ip, hostname)
}
