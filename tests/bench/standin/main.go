// Command standin is a fast local AWS stand-in for the daemon-scale benchmark
// (tests/bench/bench_daemon). It answers, on 127.0.0.1 only, exactly the calls a workflow
// makes for an AWS Backup notification of a DynamoDB backup, in the JSON protocols
// Rotator's client speaks (X-Amz-Target):
//
//	SQS       GetQueueAttributes, ReceiveMessage (long poll), DeleteMessage,
//	          ChangeMessageVisibility(Batch)
//	DynamoDB  RestoreTableFromBackup, DescribeTable, TagResource, ListTables,
//	          ListTagsOfResource
//	SSM       GetParameter, PutParameter
//
// It is a speed stand-in, not an emulator: it checks no signature and no IAM policy (the
// correctness tests run against moto with both checked). It keeps the state a workflow
// needs to really complete: a queue of N notifications with visibility timeouts and
// receipt handles, the tables the restores create (CREATING for -creating-polls
// DescribeTable calls, then ACTIVE; -creating-polls -1 keeps them CREATING), their tags,
// and parameter values with versions.
//
// The queue starts held: messages become receivable after POST /_bench/release (all at
// once, or ?rate=R a second), so the bench can read the daemon's CPU and RSS before
// intake, and time a message's way through an otherwise quiet daemon. GET /_bench/stats answers JSON:
// calls by action, the stand-in's own service time, and for each message the time its
// ReceiveMessage answer was written and the time its restore call arrived, with the
// service time of that workflow's calls in between (for the receive -> restore latency;
// only with ?latency=1).
//
// Usage: standin -n N [-creating-polls K] [-queue NAME]; prints "listening PORT" on stdout.
package main

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const account = "123456789012"
const region = "us-east-1"
const acctArn = "arn:aws:dynamodb:us-east-1:123456789012:table/"

type message struct {
	id, body, md5 string
	receipt      string
	receives     int
	visibleAt    time.Time
	deleted      bool
	table        string // source table name (bench%05d-production)
	sentAt       int64  // ns since start: the ReceiveMessage answer carrying it was written
	restoreAt    int64  // ns since start: its restore call arrived
	between      int64  // service time (ns) of its workflow's calls between the two
}

type table struct {
	name, arn, source, backup string
	polls                     int
	status                    string
	created                   time.Time
	tags                      map[string]string
}

type param struct {
	value   string
	version int
	at      time.Time
}

type server struct {
	mu            sync.Mutex
	start         time.Time
	creatingPolls int
	queueName     string
	released      bool
	wake          chan struct{}
	msgs          []*message
	visible       []*message // FIFO of receivable messages
	held          []*message // not released yet
	byReceipt     map[string]*message
	bySource      map[string]*message
	tables        map[string]*table
	params        map[string]*param
	calls         map[string]int
	serviceNs     map[string]int64
	unknown       map[string]int
	deletes       int
	seq           int
}

func (s *server) since() int64 { return time.Since(s.start).Nanoseconds() }

func envelope(i int) string {
	t := fmt.Sprintf("bench%05d-production", i)
	msg := fmt.Sprintf("An AWS Backup job was completed successfully. Recovery point ARN: %s%s/backup/"+
		"01795575600000-%08x. Backed up Resource ARN : %s%s. Backup Job Id : job-%08d", acctArn, t, i, acctArn, t, i)
	attrs := map[string]string{"EventType": "BACKUP_JOB", "State": "COMPLETED", "Id": fmt.Sprintf("job-%08d", i),
		"StartTime": fmt.Sprintf("2026-11-25T03:00:%02d.226Z", i%60)}
	ma := map[string]any{}
	for k, v := range attrs {
		ma[k] = map[string]string{"Type": "String", "Value": v}
	}
	b, _ := json.Marshal(map[string]any{"Type": "Notification", "MessageId": fmt.Sprintf("m-%d", i), "Message": msg,
		"Timestamp": "2026-11-25T03:41:07.512Z", "MessageAttributes": ma})
	return string(b)
}

func newServer(n, creatingPolls int, queue string) *server {
	s := &server{start: time.Now(), creatingPolls: creatingPolls, queueName: queue, wake: make(chan struct{}),
		byReceipt: map[string]*message{}, bySource: map[string]*message{}, tables: map[string]*table{},
		params: map[string]*param{}, calls: map[string]int{}, serviceNs: map[string]int64{}, unknown: map[string]int{}}
	for i := 0; i < n; i++ {
		body := envelope(i)
		sum := md5.Sum([]byte(body))
		m := &message{id: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), body: body, md5: hex.EncodeToString(sum[:]),
			table: fmt.Sprintf("bench%05d-production", i), sentAt: -1, restoreAt: -1}
		s.msgs = append(s.msgs, m)
		s.held = append(s.held, m)
		s.bySource[m.table] = m
	}
	return s
}

type answer struct {
	status int
	body   any
	code   string
}

func ok(v any) answer { return answer{status: 200, body: v} }
func fail(status int, code, msg string) answer {
	return answer{status: status, code: code, body: map[string]string{"__type": code, "message": msg}}
}

func str(p map[string]any, k string) string {
	v, _ := p[k].(string)
	return v
}

func num(p map[string]any, k string, def int) int {
	if v, ok := p[k].(float64); ok {
		return int(v)
	}
	return def
}

var sourceOfBackup = regexp.MustCompile(`:table/([^/]+)/backup/`)

// The workflow a call belongs to (its message), from a table name in the request.
func (s *server) workflowOf(p map[string]any) *message {
	for _, k := range []string{"TableName", "TargetTableName"} {
		if name := str(p, k); name != "" {
			if t := s.tables[name]; t != nil {
				return s.bySource[t.source]
			}
		}
	}
	if arn := str(p, "ResourceArn"); arn != "" {
		if t := s.tables[strings.TrimPrefix(arn, acctArn)]; t != nil {
			return s.bySource[t.source]
		}
	}
	return nil
}

func (s *server) describe(t *table) map[string]any {
	return map[string]any{"TableName": t.name, "TableArn": t.arn, "TableStatus": t.status,
		"TableId": "00000000-0000-0000-0000-" + fmt.Sprintf("%012d", len(t.name)),
		"CreationDateTime": float64(t.created.UnixMilli()) / 1000, "ItemCount": 0, "TableSizeBytes": 0,
		"KeySchema":            []map[string]string{{"AttributeName": "pk", "KeyType": "HASH"}},
		"AttributeDefinitions": []map[string]string{{"AttributeName": "pk", "AttributeType": "S"}},
		"BillingModeSummary":   map[string]string{"BillingMode": "PAY_PER_REQUEST"},
		"RestoreSummary": map[string]any{"SourceBackupArn": t.backup, "SourceTableArn": acctArn + t.source,
			"RestoreDateTime": float64(t.created.UnixMilli()) / 1000, "RestoreInProgress": t.status == "CREATING"}}
}

// Called with s.mu held; may release it while a long poll waits.
func (s *server) receive(p map[string]any) answer {
	max := num(p, "MaxNumberOfMessages", 1)
	vis := num(p, "VisibilityTimeout", 30)
	deadline := time.Now().Add(time.Duration(num(p, "WaitTimeSeconds", 0)) * time.Second)
	for {
		now := time.Now()
		if s.released && len(s.visible) == 0 {
			for _, m := range s.msgs { // visibility timeouts that ran out
				if !m.deleted && m.receives > 0 && !m.visibleAt.After(now) && s.byReceipt[m.receipt] == m {
					delete(s.byReceipt, m.receipt)
					m.receipt = ""
					s.visible = append(s.visible, m)
				}
			}
		}
		if s.released && len(s.visible) > 0 {
			break
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return ok(map[string]any{})
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-time.After(min(wait, time.Second)):
		}
		s.mu.Lock()
	}
	out := []map[string]any{}
	for len(out) < max && len(s.visible) > 0 {
		m := s.visible[0]
		s.visible = s.visible[1:]
		if m.deleted {
			continue
		}
		s.seq++
		m.receives++
		m.receipt = fmt.Sprintf("rh-%d-%s", s.seq, m.id)
		m.visibleAt = time.Now().Add(time.Duration(vis) * time.Second)
		s.byReceipt[m.receipt] = m
		out = append(out, map[string]any{"MessageId": m.id, "ReceiptHandle": m.receipt, "MD5OfBody": m.md5,
			"Body": m.body, "Attributes": map[string]string{"ApproximateReceiveCount": strconv.Itoa(m.receives),
				"SentTimestamp": strconv.FormatInt(s.start.UnixMilli(), 10), "SenderId": account,
				"ApproximateFirstReceiveTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10)}})
	}
	return answer{status: 200, body: map[string]any{"Messages": out}, code: "receive"}
}

func (s *server) handle(action string, p map[string]any) answer {
	switch action {
	case "AmazonSQS.GetQueueAttributes":
		visible, inflight := 0, 0
		for _, m := range s.msgs {
			if m.deleted {
				continue
			}
			if s.byReceipt[m.receipt] == m {
				inflight++
			} else {
				visible++
			}
		}
		if !s.released {
			visible = 0
		}
		return ok(map[string]any{"Attributes": map[string]string{
			"QueueArn":                              fmt.Sprintf("arn:aws:sqs:%s:%s:%s", region, account, s.queueName),
			"ApproximateNumberOfMessages":           strconv.Itoa(visible),
			"ApproximateNumberOfMessagesNotVisible": strconv.Itoa(inflight), "VisibilityTimeout": "30"}})
	case "AmazonSQS.ReceiveMessage":
		return s.receive(p)
	case "AmazonSQS.DeleteMessage":
		m := s.byReceipt[str(p, "ReceiptHandle")]
		if m == nil {
			return fail(400, "com.amazonaws.sqs#ReceiptHandleIsInvalid", "unknown receipt handle")
		}
		delete(s.byReceipt, m.receipt)
		if !m.deleted {
			m.deleted = true
			s.deletes++
		}
		return ok(map[string]any{})
	case "AmazonSQS.ChangeMessageVisibility":
		m := s.byReceipt[str(p, "ReceiptHandle")]
		if m == nil {
			return fail(400, "com.amazonaws.sqs#ReceiptHandleIsInvalid", "unknown receipt handle")
		}
		m.visibleAt = time.Now().Add(time.Duration(num(p, "VisibilityTimeout", 30)) * time.Second)
		return ok(map[string]any{})
	case "AmazonSQS.ChangeMessageVisibilityBatch":
		okIds, failed := []map[string]string{}, []map[string]any{}
		entries, _ := p["Entries"].([]any)
		for _, e := range entries {
			ent, _ := e.(map[string]any)
			m := s.byReceipt[str(ent, "ReceiptHandle")]
			if m == nil {
				failed = append(failed, map[string]any{"Id": str(ent, "Id"), "Code": "ReceiptHandleIsInvalid", "SenderFault": true})
				continue
			}
			m.visibleAt = time.Now().Add(time.Duration(num(ent, "VisibilityTimeout", 30)) * time.Second)
			okIds = append(okIds, map[string]string{"Id": str(ent, "Id")})
		}
		return ok(map[string]any{"Successful": okIds, "Failed": failed})
	case "DynamoDB_20120810.RestoreTableFromBackup":
		name, backup := str(p, "TargetTableName"), str(p, "BackupArn")
		if s.tables[name] != nil {
			return fail(400, "com.amazonaws.dynamodb.v20120810#TableAlreadyExistsException", "Table already exists: "+name)
		}
		sm := sourceOfBackup.FindStringSubmatch(backup)
		if sm == nil {
			return fail(400, "com.amazonaws.dynamodb.v20120810#BackupNotFoundException", "Backup not found: "+backup)
		}
		t := &table{name: name, arn: acctArn + name, source: sm[1], backup: backup, status: "CREATING",
			created: time.Now(), tags: map[string]string{}}
		if s.creatingPolls == 0 {
			t.status = "ACTIVE"
		}
		s.tables[name] = t
		if m := s.bySource[t.source]; m != nil && m.restoreAt < 0 {
			m.restoreAt = s.since()
		}
		return ok(map[string]any{"TableDescription": s.describe(t)})
	case "DynamoDB_20120810.DescribeTable":
		t := s.tables[str(p, "TableName")]
		if t == nil {
			return fail(400, "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "Requested resource not found")
		}
		d := s.describe(t)
		if t.status == "CREATING" {
			t.polls++
			if s.creatingPolls >= 0 && t.polls >= s.creatingPolls {
				t.status = "ACTIVE"
			}
		}
		return ok(map[string]any{"Table": d})
	case "DynamoDB_20120810.TagResource":
		t := s.tables[strings.TrimPrefix(str(p, "ResourceArn"), acctArn)]
		if t == nil {
			return fail(400, "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "Requested resource not found")
		}
		tags, _ := p["Tags"].([]any)
		for _, x := range tags {
			kv, _ := x.(map[string]any)
			t.tags[str(kv, "Key")] = str(kv, "Value")
		}
		return ok(map[string]any{})
	case "DynamoDB_20120810.ListTagsOfResource":
		t := s.tables[strings.TrimPrefix(str(p, "ResourceArn"), acctArn)]
		if t == nil {
			return fail(400, "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "Requested resource not found")
		}
		tags := []map[string]string{}
		for k, v := range t.tags {
			tags = append(tags, map[string]string{"Key": k, "Value": v})
		}
		return ok(map[string]any{"Tags": tags})
	case "DynamoDB_20120810.ListTables":
		names := []string{}
		for n := range s.tables {
			names = append(names, n)
		}
		sort.Strings(names)
		start := str(p, "ExclusiveStartTableName")
		limit := num(p, "Limit", 100)
		out := []string{}
		for _, n := range names {
			if n > start && len(out) < limit {
				out = append(out, n)
			}
		}
		r := map[string]any{"TableNames": out}
		if len(out) == limit && out[len(out)-1] != names[len(names)-1] {
			r["LastEvaluatedTableName"] = out[len(out)-1]
		}
		return ok(r)
	case "AmazonSSM.GetParameter":
		name := str(p, "Name")
		v := s.params[name]
		if v == nil {
			return fail(400, "ParameterNotFound", "Parameter "+name+" not found.")
		}
		return ok(map[string]any{"Parameter": map[string]any{"Name": name, "Type": "String", "Value": v.value,
			"Version": v.version, "LastModifiedDate": float64(v.at.UnixMilli()) / 1000, "DataType": "text",
			"ARN": fmt.Sprintf("arn:aws:ssm:%s:%s:parameter%s", region, account, name)}})
	case "AmazonSSM.PutParameter":
		name := str(p, "Name")
		v := s.params[name]
		if v != nil && p["Overwrite"] != true {
			return fail(400, "ParameterAlreadyExists", "The parameter already exists.")
		}
		if v == nil {
			v = &param{}
			s.params[name] = v
		}
		v.value, v.at = str(p, "Value"), time.Now()
		v.version++
		return ok(map[string]any{"Version": v.version, "Tier": "Standard"})
	}
	s.unknown[action]++
	return fail(400, "UnknownOperationException", "the benchmark's stand-in does not answer "+action)
}

func (s *server) serveAWS(w http.ResponseWriter, r *http.Request) {
	arrived := s.since()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	action := r.Header.Get("X-Amz-Target")
	p := map[string]any{}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, "bad JSON: "+err.Error(), 400)
			return
		}
	}
	s.mu.Lock()
	s.calls[action]++
	a := s.handle(action, p)
	wf := s.workflowOf(p)
	var carried []*message
	if a.code == "receive" {
		for _, m := range a.body.(map[string]any)["Messages"].([]map[string]any) {
			carried = append(carried, s.byReceipt[m["ReceiptHandle"].(string)])
		}
	}
	s.mu.Unlock()
	out, _ := json.Marshal(a.body)
	ctype := "application/x-amz-json-1.0"
	if strings.HasPrefix(action, "AmazonSSM.") {
		ctype = "application/x-amz-json-1.1"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("x-amzn-RequestId", fmt.Sprintf("standin-%d", arrived))
	if a.status != 200 {
		if code, ok := a.body.(map[string]string); ok {
			if i := strings.LastIndex(code["__type"], "#"); i >= 0 {
				w.Header().Set("x-amzn-query-error", code["__type"][i+1:]+";Sender")
			}
		}
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(out)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	done := s.since()
	s.mu.Lock()
	if a.code == "receive" {
		for _, m := range carried {
			if m != nil && m.sentAt < 0 {
				m.sentAt = done
			}
		}
	} else {
		s.serviceNs[action] += done - arrived
		if wf != nil && wf.sentAt >= 0 && wf.restoreAt < 0 {
			wf.between += done - arrived
		}
	}
	s.mu.Unlock()
}

// Wake the long polls. Called with s.mu held.
func (s *server) notify() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// Release the held messages one at a time, rate a second.
func (s *server) trickle(rate float64) {
	next := time.Now()
	for {
		next = next.Add(time.Duration(float64(time.Second) / rate))
		time.Sleep(time.Until(next))
		s.mu.Lock()
		if len(s.held) == 0 {
			s.mu.Unlock()
			return
		}
		s.visible = append(s.visible, s.held[0])
		s.held = s.held[1:]
		s.notify()
		s.mu.Unlock()
	}
}

func (s *server) serveBench(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.URL.Path {
	case "/_bench/release": // all at once, or ?rate=R messages per second
		rate, _ := strconv.ParseFloat(r.URL.Query().Get("rate"), 64)
		s.released = true
		if rate <= 0 {
			s.visible = append(s.visible, s.held...)
			s.held = nil
			s.notify()
		} else {
			go s.trickle(rate)
		}
		fmt.Fprintln(w, "released")
	case "/_bench/stats":
		lat := []map[string]int64{}
		for _, m := range s.msgs {
			if r.URL.Query().Get("latency") == "" {
				break // progress polls stay cheap: the lock is held meanwhile
			}
			if m.sentAt >= 0 && m.restoreAt >= 0 {
				lat = append(lat, map[string]int64{"sent": m.sentAt, "restore": m.restoreAt, "between": m.between})
			}
		}
		creating := 0
		for _, t := range s.tables {
			if t.status == "CREATING" {
				creating++
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"calls": s.calls, "service_ns": s.serviceNs, "unknown": s.unknown,
			"deletes": s.deletes, "tables": len(s.tables), "creating": creating, "latency": lat})
	default:
		http.NotFound(w, r)
	}
}

func main() {
	n := flag.Int("n", 1000, "notifications in the queue")
	creating := flag.Int("creating-polls", 1, "DescribeTable calls that see CREATING before ACTIVE (-1: never ACTIVE)")
	queue := flag.String("queue", "bench", "queue name")
	flag.Parse()
	s := newServer(*n, *creating, *queue)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_bench/", s.serveBench)
	mux.HandleFunc("/", s.serveAWS)
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "listening %d\n", ln.Addr().(*net.TCPAddr).Port)
	_ = out.Flush()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
}
