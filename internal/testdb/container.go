package testdb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcmariadb "github.com/testcontainers/testcontainers-go/modules/mariadb"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Container images and credentials of the fallback servers.
const (
	PostgresImage = "postgres:15-alpine"
	MariaDBImage  = "mariadb:10.11"
	containerPass = "test"
)

// errNoEngine says no Docker engine answers; its text is the skip reason.
var errNoEngine = errors.New("no Docker engine running")

// startContainer starts a throwaway server with testcontainers-go when a
// Docker engine is running. Each engine uses the testcontainers module made
// for its image (PostgreSQL's, MariaDB's: their wait strategies wait for the
// log lines those images print, plus the listening port). The container
// lives as long as the test binary: testcontainers' reaper (Ryuk) removes it
// afterwards, as its docs describe (TESTCONTAINERS_RYUK_DISABLED=true where
// Ryuk cannot run; the containers then stay until removed by hand). Images
// are pulled on first use.
func startContainer(e Engine) (string, error) {
	if err := dockerEngine(); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	image, opts := containerOptions(e)
	switch e {
	case Postgres:
		c, err := tcpostgres.Run(ctx, image, opts...)
		if err != nil {
			return "", fmt.Errorf("start %s container: %w", image, err)
		}
		return c.ConnectionString(ctx, "sslmode=disable")
	default:
		c, err := tcmariadb.Run(ctx, image, opts...)
		if err != nil {
			return "", fmt.Errorf("start %s container: %w", image, err)
		}
		host, err := c.Host(ctx)
		if err != nil {
			return "", err
		}
		port, err := c.MappedPort(ctx, "3306/tcp")
		if err != nil {
			return "", err
		}
		u := url.URL{Scheme: "mysql", User: url.UserPassword("root", containerPass), Host: host + ":" + port.Port(), Path: "/test"}
		return u.String(), nil
	}
}

// containerOptions is the image and the customizers startContainer hands to
// engine's module: database test, user postgres or root with password test,
// and, beside each module's log-line wait, a wait for the listening port.
func containerOptions(e Engine) (string, []testcontainers.ContainerCustomizer) {
	if e == Postgres {
		return PostgresImage, []testcontainers.ContainerCustomizer{
			tcpostgres.WithDatabase("test"), tcpostgres.WithUsername("postgres"),
			tcpostgres.WithPassword(containerPass), tcpostgres.BasicWaitStrategies(),
		}
	}
	return MariaDBImage, []testcontainers.ContainerCustomizer{
		tcmariadb.WithDatabase("test"), tcmariadb.WithUsername("root"), tcmariadb.WithPassword(containerPass),
		testcontainers.WithAdditionalWaitStrategy(wait.ForListeningPort("3306/tcp")),
	}
}

// dockerEngine reports whether a Docker engine answers. Its error says
// "no Docker engine running" (wrapping errNoEngine) and whether a Docker
// client is installed, so that a skip tells the two cases apart.
func dockerEngine() error {
	client := ""
	if p, err := exec.LookPath("docker"); err == nil {
		client = p
	} else if h := os.Getenv("DOCKER_HOST"); h != "" {
		client = "DOCKER_HOST=" + h
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	provider, err := testcontainers.NewDockerProvider()
	if err == nil {
		defer provider.Close()
		err = provider.Health(ctx)
	}
	if err == nil {
		return nil
	}
	if client != "" {
		return fmt.Errorf("%w: a Docker client is installed (%s) but no engine answers", errNoEngine, client)
	}
	return fmt.Errorf("%w: no Docker client or engine installed", errNoEngine)
}
