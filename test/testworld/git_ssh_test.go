package testworld

import (
	"net"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh/agent"
)

// SSHAgent's fallback, the in-memory agent, keeps the keys added to it.
func TestServeKeyring(t *testing.T) {
	sock := filepath.Join(shortTempDir(t), "agent.sock")
	serveKeyring(t, sock)
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ag := agent.NewClient(c)
	if err := ag.Add(agent.AddedKey{PrivateKey: NewSSHKey(t)}); err != nil {
		t.Fatal(err)
	}
	keys, err := ag.List()
	if err != nil || len(keys) != 1 {
		t.Errorf("List = %d keys, %v; want 1", len(keys), err)
	}
}
