package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"ehrgate/config"
	"ehrgate/fhir"
	"ehrgate/fhir/bulk"
	"ehrgate/gateway"
	"ehrgate/ingest"
	"ehrgate/smart"
)

func newBulkCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bulk",
		Short: "FHIR Bulk Data: export a population from a server, or import NDJSON files",
		Long: `bulk moves whole populations: 'bulk export' runs a FHIR Bulk Data $export
against a server and streams every file into the store; 'bulk import' ingests
NDJSON already on disk. Both normalize and store exactly like a sync,
quarantine what cannot be read (with file and line) and can be re-run safely.`,
	}
	cmd.AddCommand(newBulkExportCmd(a), newBulkImportCmd(a))
	return cmd
}

func newBulkExportCmd(a *app) *cobra.Command {
	var (
		connName, baseURL, group, since, outDir string
		types, typeFilters                      []string
		patient, full, asJSON                   bool
		maxDownloads, workers, maxReexports     int
	)
	cmd := &cobra.Command{
		Use:   "export --connection NAME [--base-url URL] [--group ID | --patient] [--since T] [--type T,...]",
		Short: "Run a Bulk Data $export and ingest the files",
		Long: `export kicks off a FHIR Bulk Data export (system level, Patient/$export with
--patient, or Group/ID/$export with --group), polls until the server is done,
downloads the files in parallel (--max-downloads at a time; fewer when the
server answers 429) and ingests them, then deletes the job on the server.
Ctrl-C cancels the job on the server.

A run that was killed resumes: the job it kicked off is kept in the store
until the export completes, and the next run of the same export (same
connection, level, group, --type, --since and --type-filter) polls that job
instead of starting a new one, and skips the files already ingested. A job
the server no longer knows or reports failed is replaced by a new one; a
different request abandons it (and deletes it on the server).

Incremental by default, per resource type: each type's _since is the
transactionTime of the last export of the same connection and level/group
that brought that type completely, and the deleted output is applied as
tombstones. Types with different _since are exported in separate jobs; a type
never brought completely is asked from the beginning. --since overrides it;
--full exports everything.

An export is incomplete for a type when the manifest's error array names it
(or names nothing that ties to a type: then every type), when one of its files
fails for good, when the server did not grant the access token that type, or
when it is missing from the output of an export from the beginning. Its _since
then stays where it was, so the next run asks for it again; the summary, the
log, 'ehrgate status' and the dashboard's connection page say which types and
files. Before kick-off, a still-valid access token granted for fewer types
than requested (the connection's types were widened) is renewed. A file the
server no longer has (410 Gone) is not retried: a new export is started for
its type, at most --max-reexports times (bulk.max_reexports, default 1).

--out DIR writes the files as received (TYPE.N.ndjson, deleted.N.ndjson,
error.N.ndjson) and the manifest as manifest.json into DIR, and stores
nothing: no resources, no _since (it exports from --since, or everything).
It resumes too: the job and each file's progress are kept in DIR
(.ehrgate-export.json and .ehrgate-export.log, removed when the export
ends), so that a killed run's next run of the same export polls the same
job, skips the files already whole and continues a file it was in the
middle of (TYPE.N.ndjson.partial) at its last byte.

Progress goes to stderr: a live bar on a terminal, a plain line every few
seconds otherwise. Exit status: 0 when every requested type came completely,
3 when the export ran but is incomplete (see above), 1 when it could not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			conn, err := resolveConnection(a, connName, baseURL)
			if err != nil {
				return err
			}
			req := bulk.Request{Patient: patient, Group: group, Types: splitList(types), TypeFilters: typeFilters}
			if since != "" {
				t, err := fhir.ParseDateTime(since)
				if err != nil {
					return fmt.Errorf("--since %q is not a FHIR date or instant", since)
				}
				req.Since = t
			}
			g, err := a.openGateway(cmd.Context())
			if err != nil {
				return err
			}
			defer g.Close()
			o := gateway.BulkExportOptions{Full: full, OutDir: outDir, Workers: workers,
				// The status URL without its query (which may carry a
				// signature); never a token.
				Resuming: func(statusURL string) { fmt.Fprintln(a.stderr, "resuming export job "+statusURL) },
			}
			if cmd.Flags().Changed("max-downloads") {
				o.MaxDownloads = maxDownloads
			}
			if cmd.Flags().Changed("max-reexports") {
				o.MaxReexports = &maxReexports
			}
			var stopView func()
			defer func() {
				if stopView != nil {
					stopView()
				}
			}()
			o.Started = func(in *ingest.Ingester, m *bulk.Manifest) {
				if stopView != nil {
					stopView() // the previous job's
				}
				stopView = startProgress(a.stderr, in.Progress, manifestTotal(m))
			}
			sum, err := g.BulkExport(cmd.Context(), conn, req, o)
			if stopView != nil {
				stopView()
				stopView = nil
			}
			if err != nil {
				if cmd.Context().Err() != nil {
					return fmt.Errorf("export interrupted; the job was cancelled on the server: %w", err)
				}
				return err
			}
			what := "exported " + conn.Name
			if outDir != "" {
				what += " to " + outDir
			}
			if err := printExport(a.stdout, what, sum, asJSON); err != nil {
				return err
			}
			if !sum.Complete {
				return &exitError{code: 3, msg: "export incomplete for " + strings.Join(typeLabels(sum.IncompleteTypes()), ", ") +
					"; those types keep their _since and the next run asks for them again"}
			}
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&connName, "connection", "", "connection name")
	f.StringVar(&baseURL, "base-url", "", "FHIR base URL for an ad-hoc connection")
	f.StringVar(&group, "group", "", "export Group/ID/$export")
	f.BoolVar(&patient, "patient", false, "export Patient/$export")
	f.StringVar(&since, "since", "", "only resources changed after this instant (_since); default: the last export's transactionTime")
	f.BoolVar(&full, "full", false, "ignore the last export's transactionTime and export everything")
	f.StringSliceVar(&types, "type", nil, "resource types (_type), comma-separated")
	f.StringArrayVar(&typeFilters, "type-filter", nil, "a _typeFilter such as 'Observation?category=laboratory' (repeatable)")
	f.IntVar(&maxDownloads, "max-downloads", 4, "concurrent file downloads (default: the vendor's limit, else 4; lowered automatically on 429)")
	f.IntVar(&workers, "workers", 0, "normalization workers (default: CPUs)")
	f.IntVar(&maxReexports, "max-reexports", ingest.DefaultMaxReexports, "new exports started for files the server no longer has (410 Gone); 0 = none (bulk.max_reexports)")
	f.StringVar(&outDir, "out", "", "write the files as received and manifest.json into this directory instead of storing them")
	f.BoolVar(&asJSON, "json", false, "print the summary as one JSON object")
	cmd.MarkFlagsMutuallyExclusive("group", "patient")
	cmd.MarkFlagsMutuallyExclusive("since", "full")
	cmd.MarkFlagsMutuallyExclusive("out", "full")
	return cmd
}

func typeLabels(types []string) []string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = t
		if t == "" {
			out[i] = "every type"
		}
	}
	return out
}

// printExport prints an export's summary: the ingest figures, then what is
// incomplete and why (or the JSON summary with --json).
func printExport(w io.Writer, what string, sum ingest.ExportSummary, asJSON bool) error {
	if err := printIngest(w, what, sum.Summary, asJSON, sum); err != nil || asJSON {
		return err
	}
	if len(sum.NotGranted) > 0 {
		fmt.Fprintf(w, "not granted by the server (narrower scopes than requested): %s\n", strings.Join(sum.NotGranted, ", "))
	}
	if sum.Reexports > 0 {
		fmt.Fprintf(w, "re-exported %d time(s) for files the server no longer had\n", sum.Reexports)
	}
	if sum.Complete {
		fmt.Fprintf(w, "complete: %d job(s), transactionTime %s\n", sum.Jobs, sum.TransactionTime.UTC().Format(time.RFC3339))
		return nil
	}
	fmt.Fprintln(w, "INCOMPLETE: these types keep their _since; the next run asks for them again:")
	for _, is := range sum.Incomplete {
		fmt.Fprintf(w, "  %-20s %s\n", typeLabels([]string{is.Type})[0], is.Reason)
		for _, f := range is.Files {
			fmt.Fprintf(w, "  %-20s   %s\n", "", f)
		}
	}
	return nil
}

func newBulkImportCmd(a *app) *cobra.Command {
	var (
		connName          string
		asJSON            bool
		workers, maxLine  int
		batchSize, nfiles int
	)
	cmd := &cobra.Command{
		Use:   "import PATH... [--connection NAME]",
		Short: "Ingest NDJSON files or directories (.ndjson, .jsonl, .gz) into the store",
		Long: `import streams NDJSON already on disk into the store: files, or directories
searched for *.ndjson and *.jsonl (gzipped or not). Each line is normalized and
stored like REST data; a malformed or over-long line is quarantined with its
file and line number and the import goes on.

Killed midway, the same command resumes where the last committed batch ended;
re-running it after it finished adds nothing.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			files, job, err := ingest.LocalFiles(args)
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return fmt.Errorf("no .ndjson or .jsonl files in %s", strings.Join(args, ", "))
			}
			g, err := a.openGateway(cmd.Context())
			if err != nil {
				return err
			}
			defer g.Close()
			in, err := ingest.New(g.Store(), ingest.Options{Connection: connName, Job: job, Workers: workers,
				MaxLine: maxLine, BatchSize: batchSize, Files: nfiles, Logger: a.log})
			if err != nil {
				return err
			}
			stop := startProgress(a.stderr, in.Progress, -1)
			sum, err := in.Run(cmd.Context(), files)
			stop()
			if err != nil {
				return err
			}
			if sum.New+sum.Updated > 0 {
				requestMatch(cmd.Context(), a, g.Gateway)
			}
			if err := printIngest(a.stdout, "imported into "+connName, sum, asJSON, sum); err != nil {
				return err
			}
			if len(sum.Errors) > 0 {
				return &exitError{code: 3, msg: fmt.Sprintf("%d file(s) not ingested completely", len(sum.Errors))}
			}
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&connName, "connection", "import", "connection name the resources are stored under")
	f.BoolVar(&asJSON, "json", false, "print the summary as one JSON object")
	f.IntVar(&workers, "workers", 0, "normalization workers (default: CPUs)")
	f.IntVar(&nfiles, "files", 4, "files read at once")
	f.IntVar(&batchSize, "batch-size", 2000, "resources per transaction")
	f.IntVar(&maxLine, "max-line", 16<<20, "longest line accepted in bytes; longer lines are quarantined")
	return cmd
}

// resolveConnection picks a configured connection or builds an ad-hoc one,
// as `ehrgate sync` does.
func resolveConnection(a *app, name, baseURL string) (config.Connection, error) {
	if baseURL != "" {
		if name == "" {
			name = "default"
		}
		conn := config.Connection{Name: name, BaseURL: baseURL}
		probe := a.cfg
		probe.Connections = []config.Connection{conn}
		if err := probe.Validate(); err != nil {
			return conn, err
		}
		return conn, nil
	}
	if name == "" && len(a.cfg.Connections) == 1 {
		name = a.cfg.Connections[0].Name
	}
	c, ok := a.cfg.Connection(name)
	if !ok {
		return c, fmt.Errorf("no connection %q in the configuration; pass --base-url or add it to the config file", name)
	}
	return c, nil
}

func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// manifestTotal is the number of resources the manifest announces, or -1
// when a file has no count.
func manifestTotal(m *bulk.Manifest) int64 {
	var n int64
	for _, f := range m.Output {
		if f.Count == nil {
			return -1
		}
		n += *f.Count
	}
	return n
}

// startProgress shows ingest progress on w until the returned stop is
// called: a progress bar on a terminal, a plain line every 5s otherwise.
func startProgress(w io.Writer, snap func() ingest.Progress, total int64) (stop func()) {
	f, isFile := w.(*os.File)
	tty := isFile && term.IsTerminal(int(f.Fd()))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		var bar *progressbar.ProgressBar
		every := 5 * time.Second
		if tty {
			every = 200 * time.Millisecond
			bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(w), progressbar.OptionShowCount(),
				progressbar.OptionShowIts(), progressbar.OptionSetItsString("res"), progressbar.OptionSetPredictTime(true),
				progressbar.OptionSetElapsedTime(true), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if bar != nil {
					_ = bar.Finish()
				}
				return
			case <-t.C:
				p := snap()
				if bar != nil {
					bar.Describe(fmt.Sprintf("files %d/%d, %s", p.FilesDone, p.FilesTotal, humanBytes(p.Bytes)))
					_ = bar.Set64(p.Resources)
					continue
				}
				fmt.Fprintln(w, progressLine(p, total, time.Since(start)))
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// progressLine is the plain progress report: files, resources, bytes, rate
// and, when the total is known, ETA.
func progressLine(p ingest.Progress, total int64, elapsed time.Duration) string {
	rate := float64(p.Resources) / max(elapsed.Seconds(), 0.001)
	line := fmt.Sprintf("bulk: files %d/%d, resources %d, %s, %.0f resources/s", p.FilesDone, p.FilesTotal, p.Resources,
		humanBytes(p.Bytes), rate)
	switch {
	case total > 0 && rate > 0 && p.Resources <= total:
		eta := time.Duration(float64(total-p.Resources) / rate * float64(time.Second)).Round(time.Second)
		line += fmt.Sprintf(", ETA %s", eta)
	case total <= 0 && p.BytesTotal > 0 && p.Bytes > 0 && p.Bytes <= p.BytesTotal:
		byteRate := float64(p.Bytes) / max(elapsed.Seconds(), 0.001)
		eta := time.Duration(float64(p.BytesTotal-p.Bytes) / byteRate * float64(time.Second)).Round(time.Second)
		line += fmt.Sprintf(", ETA %s", eta)
	}
	return line
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// printIngest prints a summary: jsonValue as one JSON object with --json,
// else a human summary of sum.
func printIngest(w io.Writer, what string, sum ingest.Summary, asJSON bool, jsonValue any) error {
	if asJSON {
		return json.NewEncoder(w).Encode(jsonValue)
	}
	types := make([]string, 0, len(sum.Resources))
	totalRes := 0
	for t, n := range sum.Resources {
		types = append(types, t)
		totalRes += n
	}
	sort.Strings(types)
	fmt.Fprintf(w, "%s: %d files (%d already done), %d resources, %s in %.1fs\n", what, sum.Files, sum.Skipped, totalRes,
		humanBytes(sum.Bytes), float64(sum.DurationMS)/1000)
	for _, t := range types {
		fmt.Fprintf(w, "  %-20s %8d\n", t, sum.Resources[t])
	}
	fmt.Fprintf(w, "new %d, updated %d, unchanged %d, deleted %d, quarantined %d\n", sum.New, sum.Updated, sum.Unchanged,
		sum.Deleted, sum.Quarantined)
	for _, e := range sum.Errors {
		fmt.Fprintf(w, "error: %s: %s\n", e.File, e.Error)
	}
	return nil
}

// The connection's token source is what a bulk export asks about grants.
var _ ingest.Grants = (*smart.TokenSource)(nil)
