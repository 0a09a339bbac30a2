package audit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ehrgate/audit"
	"ehrgate/store/sqlite"
)

func TestForwardToFileResumesWhereItStopped(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := audit.NewLog(st, audit.Source{InstanceID: "t"}, nil)
	record := func(n int) {
		for i := 0; i < n; i++ {
			ev := audit.Read(audit.Agent{UserID: "u1"}, audit.PatientRef{Connection: "c", ID: "p1"}, audit.ResourceRef{Connection: "c", Type: "Patient", ID: "p1"})
			ev.Outcome = audit.OutcomeSuccess
			if err := log.Record(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "siem.jsonl")
	forward := func() int {
		sink, err := audit.NewFileSink(path)
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close()
		f := &audit.Forwarder{Trail: st, Docs: st, Sink: sink, Name: "file", Batch: 3}
		n, err := f.Forward(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	record(7)
	if n := forward(); n != 7 {
		t.Errorf("first Forward sent %d, want 7", n)
	}
	if n := forward(); n != 0 {
		t.Errorf("Forward with nothing new sent %d, want 0", n)
	}
	record(4)
	if n := forward(); n != 4 {
		t.Errorf("Forward after 4 more sent %d, want 4", n)
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if fi, _ := fh.Stat(); fi.Mode().Perm() != 0o600 {
		t.Errorf("sink file mode %v, want 0600", fi.Mode().Perm())
	}
	sc := bufio.NewScanner(fh)
	var ids []string
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev["resourceType"] != "AuditEvent" {
			t.Fatalf("line %q is not an AuditEvent: %v", sc.Text(), err)
		}
		ids = append(ids, ev["id"].(string))
	}
	if got := strings.Join(ids, ","); got != "1,2,3,4,5,6,7,8,9,10,11" {
		t.Errorf("forwarded ids %s, want 1..11 once each in order", got)
	}
}

func TestForwardToSyslogOverUDP(t *testing.T) {
	ctx := context.Background()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no UDP on loopback: %v", err)
	}
	defer pc.Close()
	st, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := audit.NewLog(st, audit.Source{InstanceID: "t"}, nil)
	ev := audit.Search(audit.Agent{ClientID: "app"}, audit.PatientRef{}, "code=x")
	ev.Outcome = audit.OutcomeSuccess
	if err := log.Record(ctx, ev); err != nil {
		t.Fatal(err)
	}
	sink, err := audit.NewSyslogSink("udp://" + pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	if _, err := (&audit.Forwarder{Trail: st, Docs: st, Sink: sink, Name: "syslog"}).Forward(ctx); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(buf[:n])
	// <86> is facility authpriv (10) * 8 + severity info (6), RFC 3164.
	if !strings.HasPrefix(msg, "<86>") || !strings.Contains(msg, "ehrgate-audit") || !strings.Contains(msg, `"resourceType":"AuditEvent"`) {
		t.Errorf("syslog message = %q", msg)
	}
	for _, bad := range []string{"http://x", "udp://host", "unix://", "tcp://:x"} {
		if _, _, err := audit.SyslogAddress(bad); err == nil {
			t.Errorf("SyslogAddress(%q) = nil error", bad)
		}
	}
}
