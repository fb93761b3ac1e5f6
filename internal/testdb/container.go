package testdb

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcmysql "github.com/testcontainers/testcontainers-go/modules/mysql"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
)

// startContainer starts a throwaway server with testcontainers-go when a
// Docker engine is healthy. The container lives as long as the test binary
// (testcontainers' reaper removes it afterwards).
func startContainer(e Engine) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		return "", fmt.Errorf("no Docker engine for testcontainers: %w", err)
	}
	defer provider.Close()
	if err := provider.Health(ctx); err != nil {
		return "", fmt.Errorf("no healthy Docker engine for testcontainers: %w", err)
	}
	switch e {
	case Postgres:
		c, err := tcpostgres.Run(ctx, "postgres:15-alpine",
			tcpostgres.WithDatabase("test"), tcpostgres.WithUsername("postgres"),
			tcpostgres.WithPassword("postgres"), tcpostgres.BasicWaitStrategies())
		if err != nil {
			return "", fmt.Errorf("start postgres container: %w", err)
		}
		return c.ConnectionString(ctx, "sslmode=disable")
	default:
		c, err := tcmysql.Run(ctx, "mariadb:10.11",
			tcmysql.WithDatabase("test"), tcmysql.WithUsername("root"), tcmysql.WithPassword("test"))
		if err != nil {
			return "", fmt.Errorf("start mariadb container: %w", err)
		}
		host, err := c.Host(ctx)
		if err != nil {
			return "", err
		}
		port, err := c.MappedPort(ctx, "3306/tcp")
		if err != nil {
			return "", err
		}
		u := url.URL{Scheme: "mysql", User: url.UserPassword("root", "test"), Host: host + ":" + port.Port(), Path: "/test"}
		return u.String(), nil
	}
}
