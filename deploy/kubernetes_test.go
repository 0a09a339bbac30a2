package deploy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"ehrgate/config"
)

// The Kubernetes objects below mirror the fields of the API (core/v1,
// apps/v1, policy/v1, networking.k8s.io/v1) that the manifests use, with
// the API's field names. They are decoded strictly: a misspelt field, which
// the API server would drop with at most a warning (a silently missing
// readOnlyRootFilesystem, say), fails the test. A field the manifests start
// using must be added here too.

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type typeMeta struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

// intOrString is the API's IntOrString (ports, maxUnavailable).
type intOrString string

func (v *intOrString) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want an integer or a string", n.Line)
	}
	*v = intOrString(n.Value)
	return nil
}

// quantity is a resource quantity (500m, 1Gi, 2).
type quantity string

func (v *quantity) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Value == "" {
		return fmt.Errorf("line %d: want a quantity such as 500m or 1Gi", n.Line)
	}
	*v = quantity(n.Value)
	return nil
}

type labelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []struct {
		Key      string   `yaml:"key"`
		Operator string   `yaml:"operator"`
		Values   []string `yaml:"values"`
	} `yaml:"matchExpressions"`
}

// selects reports whether the selector's matchLabels select labels (the
// manifests use no matchExpressions).
func (s labelSelector) selects(labels map[string]string) bool {
	if len(s.MatchLabels) == 0 || len(s.MatchExpressions) > 0 {
		return false
	}
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

type secret struct {
	typeMeta   `yaml:",inline"`
	Type       string            `yaml:"type"`
	Immutable  *bool             `yaml:"immutable"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
}

type configMap struct {
	typeMeta  `yaml:",inline"`
	Immutable *bool             `yaml:"immutable"`
	Data      map[string]string `yaml:"data"`
}

type seccompProfile struct {
	Type             string `yaml:"type"`
	LocalhostProfile string `yaml:"localhostProfile"`
}

type podSecurityContext struct {
	RunAsNonRoot        *bool           `yaml:"runAsNonRoot"`
	RunAsUser           *int64          `yaml:"runAsUser"`
	RunAsGroup          *int64          `yaml:"runAsGroup"`
	FSGroup             *int64          `yaml:"fsGroup"`
	FSGroupChangePolicy string          `yaml:"fsGroupChangePolicy"`
	SupplementalGroups  []int64         `yaml:"supplementalGroups"`
	SeccompProfile      *seccompProfile `yaml:"seccompProfile"`
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	RunAsGroup               *int64 `yaml:"runAsGroup"`
	Privileged               *bool  `yaml:"privileged"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	Capabilities             *struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
	SeccompProfile *seccompProfile `yaml:"seccompProfile"`
}

type keyRef struct {
	Name     string `yaml:"name"`
	Key      string `yaml:"key"`
	Optional *bool  `yaml:"optional"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
		ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
		FieldRef        *struct {
			APIVersion string `yaml:"apiVersion"`
			FieldPath  string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
	} `yaml:"valueFrom"`
}

type probe struct {
	HTTPGet *struct {
		Path   string      `yaml:"path"`
		Port   intOrString `yaml:"port"`
		Scheme string      `yaml:"scheme"`
	} `yaml:"httpGet"`
	TCPSocket *struct {
		Port intOrString `yaml:"port"`
	} `yaml:"tcpSocket"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	SuccessThreshold    int `yaml:"successThreshold"`
	FailureThreshold    int `yaml:"failureThreshold"`
}

type container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Command         []string `yaml:"command"`
	Args            []string `yaml:"args"`
	Env             []envVar `yaml:"env"`
	EnvFrom         []struct {
		Prefix       string  `yaml:"prefix"`
		SecretRef    *keyRef `yaml:"secretRef"`
		ConfigMapRef *keyRef `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	StartupProbe    *probe           `yaml:"startupProbe"`
	LivenessProbe   *probe           `yaml:"livenessProbe"`
	ReadinessProbe  *probe           `yaml:"readinessProbe"`
	SecurityContext *securityContext `yaml:"securityContext"`
	Resources       struct {
		Requests map[string]quantity `yaml:"requests"`
		Limits   map[string]quantity `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name        string `yaml:"name"`
		DefaultMode *int   `yaml:"defaultMode"`
		Items       []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName  string `yaml:"secretName"`
		DefaultMode *int   `yaml:"defaultMode"`
	} `yaml:"secret"`
	EmptyDir *struct {
		Medium    string   `yaml:"medium"`
		SizeLimit quantity `yaml:"sizeLimit"`
	} `yaml:"emptyDir"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"persistentVolumeClaim"`
}

type podSpec struct {
	ServiceAccountName            string             `yaml:"serviceAccountName"`
	AutomountServiceAccountToken  *bool              `yaml:"automountServiceAccountToken"`
	EnableServiceLinks            *bool              `yaml:"enableServiceLinks"`
	TerminationGracePeriodSeconds *int               `yaml:"terminationGracePeriodSeconds"`
	HostNetwork                   bool               `yaml:"hostNetwork"`
	HostPID                       bool               `yaml:"hostPID"`
	HostIPC                       bool               `yaml:"hostIPC"`
	SecurityContext               podSecurityContext `yaml:"securityContext"`
	NodeSelector                  map[string]string  `yaml:"nodeSelector"`
	TopologySpreadConstraints     []struct {
		MaxSkew           int           `yaml:"maxSkew"`
		TopologyKey       string        `yaml:"topologyKey"`
		WhenUnsatisfiable string        `yaml:"whenUnsatisfiable"`
		LabelSelector     labelSelector `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
	InitContainers []container `yaml:"initContainers"`
	Containers     []container `yaml:"containers"`
	Volumes        []volume    `yaml:"volumes"`
}

type deployment struct {
	typeMeta `yaml:",inline"`
	Spec     struct {
		Replicas             *int          `yaml:"replicas"`
		RevisionHistoryLimit *int          `yaml:"revisionHistoryLimit"`
		Selector             labelSelector `yaml:"selector"`
		Strategy             struct {
			Type          string `yaml:"type"`
			RollingUpdate *struct {
				MaxSurge       intOrString `yaml:"maxSurge"`
				MaxUnavailable intOrString `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type service struct {
	typeMeta `yaml:",inline"`
	Spec     struct {
		Type                     string            `yaml:"type"`
		ClusterIP                string            `yaml:"clusterIP"`
		Selector                 map[string]string `yaml:"selector"`
		SessionAffinity          string            `yaml:"sessionAffinity"`
		ExternalTrafficPolicy    string            `yaml:"externalTrafficPolicy"`
		LoadBalancerSourceRanges []string          `yaml:"loadBalancerSourceRanges"`
		Ports                    []struct {
			Name        string      `yaml:"name"`
			Port        int         `yaml:"port"`
			TargetPort  intOrString `yaml:"targetPort"`
			Protocol    string      `yaml:"protocol"`
			AppProtocol string      `yaml:"appProtocol"`
			NodePort    int         `yaml:"nodePort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type podDisruptionBudget struct {
	typeMeta `yaml:",inline"`
	Spec     struct {
		MinAvailable               *intOrString  `yaml:"minAvailable"`
		MaxUnavailable             *intOrString  `yaml:"maxUnavailable"`
		Selector                   labelSelector `yaml:"selector"`
		UnhealthyPodEvictionPolicy string        `yaml:"unhealthyPodEvictionPolicy"`
	} `yaml:"spec"`
}

type networkPolicyPeer struct {
	PodSelector       *labelSelector `yaml:"podSelector"`
	NamespaceSelector *labelSelector `yaml:"namespaceSelector"`
	IPBlock           *struct {
		CIDR   string   `yaml:"cidr"`
		Except []string `yaml:"except"`
	} `yaml:"ipBlock"`
}

type networkPolicyPort struct {
	Port     *intOrString `yaml:"port"`
	EndPort  *int         `yaml:"endPort"`
	Protocol string       `yaml:"protocol"`
}

type networkPolicy struct {
	typeMeta `yaml:",inline"`
	Spec     struct {
		PodSelector labelSelector `yaml:"podSelector"`
		PolicyTypes []string      `yaml:"policyTypes"`
		Ingress     []struct {
			From  []networkPolicyPeer `yaml:"from"`
			Ports []networkPolicyPort `yaml:"ports"`
		} `yaml:"ingress"`
		Egress []struct {
			To    []networkPolicyPeer `yaml:"to"`
			Ports []networkPolicyPort `yaml:"ports"`
		} `yaml:"egress"`
	} `yaml:"spec"`
}

// kinds maps each kind the manifests may hold to its API version and a
// constructor of its mirror.
var kinds = map[string]struct {
	apiVersion string
	new        func() any
}{
	"Secret":              {"v1", func() any { return new(secret) }},
	"ConfigMap":           {"v1", func() any { return new(configMap) }},
	"Deployment":          {"apps/v1", func() any { return new(deployment) }},
	"Service":             {"v1", func() any { return new(service) }},
	"PodDisruptionBudget": {"policy/v1", func() any { return new(podDisruptionBudget) }},
	"NetworkPolicy":       {"networking.k8s.io/v1", func() any { return new(networkPolicy) }},
}

// manifests are the decoded objects of deploy/kubernetes.
type manifests struct {
	ids         []string // kind/name of every object, in file order
	secrets     map[string]*secret
	configMaps  map[string]*configMap
	deployments []*deployment
	services    []*service
	pdbs        []*podDisruptionBudget
	policies    []*networkPolicy
}

// decodeManifests decodes a multi-document YAML stream strictly.
func decodeManifests(r io.Reader, m *manifests) error {
	dec := yaml.NewDecoder(r)
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null" {
			continue // an empty document
		}
		var tm typeMeta
		if err := doc.Decode(&tm); err != nil {
			return err
		}
		where := fmt.Sprintf("line %d: %s %q", doc.Line, tm.Kind, tm.Metadata.Name)
		k, ok := kinds[tm.Kind]
		switch {
		case !ok:
			return fmt.Errorf("%s: kind not known to this test (add a mirror of it to kubernetes_test.go)", where)
		case tm.APIVersion != k.apiVersion:
			return fmt.Errorf("%s: apiVersion %q, want %q", where, tm.APIVersion, k.apiVersion)
		case tm.Metadata.Name == "":
			return fmt.Errorf("%s: no metadata.name", where)
		}
		// yaml.Node.Decode has no strict mode: re-encode and decode with
		// KnownFields.
		b, err := yaml.Marshal(&doc)
		if err != nil {
			return err
		}
		strict := yaml.NewDecoder(bytes.NewReader(b))
		strict.KnownFields(true)
		obj := k.new()
		if err := strict.Decode(obj); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		m.ids = append(m.ids, tm.Kind+"/"+tm.Metadata.Name)
		switch o := obj.(type) {
		case *secret:
			m.secrets[o.Metadata.Name] = o
		case *configMap:
			m.configMaps[o.Metadata.Name] = o
		case *deployment:
			m.deployments = append(m.deployments, o)
		case *service:
			m.services = append(m.services, o)
		case *podDisruptionBudget:
			m.pdbs = append(m.pdbs, o)
		case *networkPolicy:
			m.policies = append(m.policies, o)
		}
	}
}

// loadManifests decodes every YAML file of deploy/kubernetes but the
// kustomization.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{secrets: map[string]*secret{}, configMaps: map[string]*configMap{}}
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeManifests(bytes.NewReader(b), m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	return m
}

func TestDecodeManifestsStrict(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"misspelt field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: c\n          securityContext: {readOnlyRootFileSystem: true}\n", "readOnlyRootFileSystem"},
		{"wrong apiVersion", "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: x}\n", "apps/v1"},
		{"unknown kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", "not known"},
		{"no name", "apiVersion: v1\nkind: Secret\nmetadata: {}\n", "metadata.name"},
	} {
		m := &manifests{secrets: map[string]*secret{}, configMaps: map[string]*configMap{}}
		err := decodeManifests(strings.NewReader("---\n"+tc.doc), m)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: decodeManifests = %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}

// containerPort resolves a Service's or probe's port (a number or a port
// name) against the container's ports.
func containerPort(c container, p intOrString) (int, bool) {
	for _, cp := range c.Ports {
		if string(p) == cp.Name || string(p) == strconv.Itoa(cp.ContainerPort) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// fmtPtr formats an optional field: its value, or "unset".
func fmtPtr[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func envNamed(c container, name string) (envVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return envVar{}, false
}

// TestKubernetesManifests checks the objects and how they refer to each
// other: security settings, probes, ports, the Secret and the ConfigMap.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	raw := readText(t, filepath.Join("kubernetes", "ehrgate.yaml"))

	if len(m.deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(m.deployments))
	}
	d := m.deployments[0]
	if d.Metadata.Namespace != "" {
		t.Errorf("Deployment sets namespace %q; leave it to kubectl -n or the kustomization", d.Metadata.Namespace)
	}
	if r := d.Spec.Replicas; r == nil || *r < 2 {
		t.Errorf("Deployment replicas %s, want at least 2", fmtPtr(r))
	}
	pod := d.Spec.Template.Spec
	podLabels := d.Spec.Template.Metadata.Labels
	if !d.Spec.Selector.selects(podLabels) {
		t.Errorf("Deployment selector %v does not select its pods' labels %v", d.Spec.Selector.MatchLabels, podLabels)
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("pod shares the host's network, PID or IPC namespace")
	}
	if a := pod.AutomountServiceAccountToken; a == nil || *a {
		t.Error("automountServiceAccountToken is not false: ehrgate does not call the Kubernetes API")
	}

	// Pod security: non-root as the image's user, RuntimeDefault seccomp.
	psc := pod.SecurityContext
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("pod securityContext.seccompProfile = %+v, want type RuntimeDefault", psc.SeccompProfile)
	}
	if uid, _, _ := strings.Cut(finalUser(loadDockerfile(t)), ":"); psc.RunAsUser == nil || strconv.FormatInt(*psc.RunAsUser, 10) != uid {
		t.Errorf("pod runAsUser %s, want the image's USER %s (the owner of /var/lib/ehrgate in the image)", fmtPtr(psc.RunAsUser), uid)
	}

	volumes := map[string]volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
		if v.ConfigMap != nil && m.configMaps[v.ConfigMap.Name] == nil {
			t.Errorf("volume %s names ConfigMap %q, which the manifests do not define", v.Name, v.ConfigMap.Name)
		}
	}

	// Every container, init containers included.
	all := append(slices.Clone(pod.InitContainers), pod.Containers...)
	for _, c := range all {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("container %s has no securityContext", c.Name)
			continue
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s is privileged", c.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s: capabilities %+v, want drop [ALL] and no add", c.Name, sc.Capabilities)
		}
		if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
			t.Errorf("container %s overrides runAsNonRoot with false", c.Name)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			t.Errorf("container %s runs as UID 0", c.Name)
		}
		if sc.SeccompProfile != nil && sc.SeccompProfile.Type != "RuntimeDefault" {
			t.Errorf("container %s: seccompProfile %q, want RuntimeDefault", c.Name, sc.SeccompProfile.Type)
		}
		for _, kind := range []struct {
			name string
			q    map[string]quantity
		}{{"requests", c.Resources.Requests}, {"limits", c.Resources.Limits}} {
			for _, r := range []string{"cpu", "memory"} {
				if kind.q[r] == "" {
					t.Errorf("container %s: no resources.%s.%s", c.Name, kind.name, r)
				}
			}
		}
		if c.Image == "" {
			t.Errorf("container %s has no image", c.Name)
		}
		for _, vm := range c.VolumeMounts {
			if _, ok := volumes[vm.Name]; !ok {
				t.Errorf("container %s mounts volume %q, which the pod does not declare", c.Name, vm.Name)
			}
		}
		// The store and the key come from a Secret of the manifests, by keys
		// it has.
		for _, name := range []string{"EHRGATE_STORE", "EHRGATE_KEK"} {
			e, ok := envNamed(c, name)
			if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("container %s: %s does not come from a secretKeyRef", c.Name, name)
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			s := m.secrets[ref.Name]
			if s == nil {
				t.Errorf("container %s: %s from Secret %q, which the manifests do not define", c.Name, name, ref.Name)
			} else if _, ok := s.StringData[ref.Key]; !ok {
				t.Errorf("container %s: %s from key %q, which Secret %s lacks", c.Name, name, ref.Key, ref.Name)
			}
		}
	}

	// Migrations run before serving.
	migrate := false
	for _, c := range pod.InitContainers {
		if len(c.Args) > 0 && c.Args[0] == "migrate" && len(c.Command) == 0 {
			migrate = true
		}
	}
	if !migrate {
		t.Error("no init container runs `ehrgate migrate` (args [migrate] on the image's entrypoint)")
	}

	// The serving container.
	var main container
	for _, c := range pod.Containers {
		if c.Name == "ehrgate" {
			main = c
		}
	}
	if main.Name == "" {
		t.Fatal("no container named ehrgate")
	}
	if len(main.Command) > 0 || len(main.Args) == 0 || main.Args[0] != "serve" {
		t.Errorf("container ehrgate: command %q args %q, want args [serve] on the image's entrypoint", main.Command, main.Args)
	}
	ports := map[string]int{}
	for _, p := range main.Ports {
		if p.Protocol != "" && p.Protocol != "TCP" {
			t.Errorf("container port %s is %s, want TCP", p.Name, p.Protocol)
		}
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 8080 || ports["mllp"] != 2575 {
		t.Errorf("container ports %v, want http 8080 and mllp 2575", ports)
	}
	for _, pr := range []struct {
		kind string
		p    *probe
		path string
	}{
		{"livenessProbe", main.LivenessProbe, "/healthz"},
		{"readinessProbe", main.ReadinessProbe, "/readyz"},
	} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("container ehrgate: no %s httpGet", pr.kind)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path {
			t.Errorf("%s path %q, want %s", pr.kind, pr.p.HTTPGet.Path, pr.path)
		}
		if port, ok := containerPort(main, pr.p.HTTPGet.Port); !ok || port != 8080 {
			t.Errorf("%s port %q, want the HTTP port 8080", pr.kind, pr.p.HTTPGet.Port)
		}
	}
	if sp := main.StartupProbe; sp != nil && (sp.HTTPGet == nil || sp.HTTPGet.Path != "/healthz") {
		t.Errorf("startupProbe %+v, want httpGet /healthz", sp)
	}

	// Where things are mounted.
	mounts := map[string]string{} // mount path -> volume
	for _, vm := range main.VolumeMounts {
		mounts[vm.MountPath] = vm.Name
	}
	if v := volumes[mounts["/var/lib/ehrgate"]]; v.EmptyDir == nil {
		t.Errorf("/var/lib/ehrgate is mounted from %+v, want an emptyDir (the root filesystem is read-only; the store is PostgreSQL)", v)
	}
	if v := volumes[mounts["/tmp"]]; v.EmptyDir == nil {
		t.Error("/tmp is not an emptyDir: the root filesystem is read-only")
	}

	// The configuration: EHRGATE_CONFIG names a file of the mounted
	// ConfigMap; loaded with the container's plain env, it validates and
	// agrees with the ports and the data mount.
	cfgEnv, ok := envNamed(main, "EHRGATE_CONFIG")
	if !ok || cfgEnv.Value == "" {
		t.Fatal("container ehrgate sets no EHRGATE_CONFIG")
	}
	dir, file := path.Split(cfgEnv.Value)
	vol := volumes[mounts[strings.TrimSuffix(dir, "/")]]
	if vol.ConfigMap == nil {
		t.Fatalf("EHRGATE_CONFIG=%s is not in a mounted ConfigMap", cfgEnv.Value)
	}
	cm := m.configMaps[vol.ConfigMap.Name]
	if cm == nil {
		t.Fatalf("ConfigMap %q is not defined", vol.ConfigMap.Name)
	}
	body, ok := cm.Data[file]
	if !ok {
		t.Fatalf("EHRGATE_CONFIG=%s: ConfigMap %s has no key %q", cfgEnv.Value, cm.Metadata.Name, file)
	}
	own, err := config.Parse([]byte(body))
	if err != nil {
		t.Fatalf("ConfigMap %s %s: config.Parse: %v", cm.Metadata.Name, file, err)
	}
	if err := own.Validate(); err != nil {
		t.Errorf("ConfigMap %s %s does not validate on its own:\n%v", cm.Metadata.Name, file, err)
	}
	cfgPath := filepath.Join(t.TempDir(), file)
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, e := range main.Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	cfg, err := config.Load(cfgPath, env)
	if err != nil {
		t.Fatalf("config.Load(ConfigMap %s, container env): %v", cm.Metadata.Name, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the pod's configuration does not validate:\n%v", err)
	}
	if cfg.Data != "/var/lib/ehrgate" {
		t.Errorf("configured data %q, want the mounted /var/lib/ehrgate", cfg.Data)
	}
	if cfg.LogFormat != "json" {
		t.Errorf("log format %q, want json for a cluster's log collector", cfg.LogFormat)
	}
	for _, a := range []struct{ what, addr, port string }{
		{"http_addr", cfg.HTTPAddr, "http"},
		{"hl7.mllp_addr", cfg.HL7.MLLPAddr, "mllp"},
	} {
		host, port, err := net.SplitHostPort(a.addr)
		if err != nil || port != strconv.Itoa(ports[a.port]) {
			t.Errorf("%s %q, want port %d (the container's %s port)", a.what, a.addr, ports[a.port], a.port)
		}
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			t.Errorf("%s %q listens on loopback: neither the Service nor the kubelet's probes would reach it", a.what, a.addr)
		}
	}

	// The Secret holds placeholders, never a usable key.
	s := m.secrets["ehrgate"]
	if s == nil {
		t.Fatal("no Secret named ehrgate")
	}
	if u, err := url.Parse(s.StringData["EHRGATE_STORE"]); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Errorf("Secret EHRGATE_STORE %q is not a postgres:// URL", s.StringData["EHRGATE_STORE"])
	}
	if k, err := base64.StdEncoding.DecodeString(s.StringData["EHRGATE_KEK"]); err == nil && len(k) == 32 {
		t.Error("Secret EHRGATE_KEK holds a usable key: commit a placeholder, never a key")
	}
	if !strings.Contains(raw, "openssl rand -base64 32") {
		t.Error("ehrgate.yaml does not say how to generate EHRGATE_KEK (openssl rand -base64 32)")
	}

	// Services: select the pods, reach named container ports.
	served := map[int]string{} // service port -> protocol
	for _, svc := range m.services {
		if !(labelSelector{MatchLabels: svc.Spec.Selector}).selects(podLabels) {
			t.Errorf("Service %s selector %v does not select the pods %v", svc.Metadata.Name, svc.Spec.Selector, podLabels)
		}
		for _, p := range svc.Spec.Ports {
			target := p.TargetPort
			if target == "" {
				target = intOrString(strconv.Itoa(p.Port))
			}
			cp, ok := containerPort(main, target)
			if !ok {
				t.Errorf("Service %s port %d targets %q, which no container port is", svc.Metadata.Name, p.Port, target)
			}
			proto := p.Protocol
			if proto == "" {
				proto = "TCP"
			}
			served[cp] = proto
		}
	}
	if served[8080] != "TCP" || served[2575] != "TCP" {
		t.Errorf("Services reach container ports %v, want 8080 (HTTP) and 2575 (MLLP) over TCP", served)
	}

	// A disruption budget that still lets nodes drain.
	if len(m.pdbs) == 0 {
		t.Error("no PodDisruptionBudget")
	}
	for _, pdb := range m.pdbs {
		if !pdb.Spec.Selector.selects(podLabels) {
			t.Errorf("PodDisruptionBudget %s does not select the pods", pdb.Metadata.Name)
		}
		switch {
		case pdb.Spec.MaxUnavailable != nil:
			if *pdb.Spec.MaxUnavailable == "0" || *pdb.Spec.MaxUnavailable == "0%" {
				t.Errorf("PodDisruptionBudget %s maxUnavailable 0 blocks every drain", pdb.Metadata.Name)
			}
		case pdb.Spec.MinAvailable != nil:
			if n, err := strconv.Atoi(string(*pdb.Spec.MinAvailable)); err == nil && d.Spec.Replicas != nil && n >= *d.Spec.Replicas {
				t.Errorf("PodDisruptionBudget %s minAvailable %d >= replicas %d blocks every drain", pdb.Metadata.Name, n, *d.Spec.Replicas)
			}
		default:
			t.Errorf("PodDisruptionBudget %s sets neither minAvailable nor maxUnavailable", pdb.Metadata.Name)
		}
	}

	// Network policies refer to real ports of the selected pods.
	for _, np := range m.policies {
		if !np.Spec.PodSelector.selects(podLabels) {
			t.Errorf("NetworkPolicy %s does not select the pods", np.Metadata.Name)
		}
		for _, in := range np.Spec.Ingress {
			for _, p := range in.Ports {
				if p.Port != nil {
					if _, ok := containerPort(main, *p.Port); !ok {
						t.Errorf("NetworkPolicy %s admits port %q, which no container port is", np.Metadata.Name, *p.Port)
					}
				}
			}
		}
	}

	// No object pins a namespace.
	for _, s := range m.secrets {
		if s.Metadata.Namespace != "" {
			t.Errorf("Secret %s sets namespace %q", s.Metadata.Name, s.Metadata.Namespace)
		}
	}
}

// TestKubectlKustomize renders deploy/kubernetes with kubectl's built-in
// kustomize, which works offline: it checks that every object has a kind
// and a name, that none is repeated, and that the kustomization names the
// manifests. kubectl's schema validation (apply or create --dry-run=client)
// needs an API server even in client mode, so it is not run: the strict
// decoding above stands in for it.
func TestKubectlKustomize(t *testing.T) {
	kubectl := lookPathOrSkip(t, "kubectl", "kubectl kustomize deploy/kubernetes")
	// An empty kubeconfig: nothing here may reach a cluster.
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "KUBECONFIG="+kubeconfig)
	out, err := run(t, ".", env, kubectl, "kustomize", "kubernetes")
	if err != nil {
		t.Fatalf("kubectl kustomize kubernetes: %v\n%s", err, out)
	}
	rendered := &manifests{secrets: map[string]*secret{}, configMaps: map[string]*configMap{}}
	if err := decodeManifests(strings.NewReader(out), rendered); err != nil {
		t.Fatalf("kustomize output: %v", err)
	}
	got, want := slices.Sorted(slices.Values(rendered.ids)), slices.Sorted(slices.Values(loadManifests(t).ids))
	if !slices.Equal(got, want) {
		t.Errorf("kubectl kustomize renders %q, want every object of the manifests %q", got, want)
	}
	t.Log("kubectl schema validation needs an API server (even --dry-run=client); covered by the strict decoding in TestKubernetesManifests")
}
