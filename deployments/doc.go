// Package deployments holds no code: it is the module of the tests that check
// bidder's deployment files (Dockerfile, docker-compose.yml, the Kubernetes
// manifests, Redis and Prometheus configs, the Grafana dashboard) against the
// binary they deploy.
//
// It is a module of its own so that the parsers those checks need
// (compose-go, Prometheus' rule and PromQL parsers, the Kubernetes API types)
// stay out of the root module that builds the daemon. Run it with
//
//	cd deployments && go test ./...
package deployments
