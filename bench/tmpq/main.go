package main

import (
	"database/sql"
	"fmt"
	"os"
	"time"

	"github.com/moat-sec/moat/internal/store"
	_ "modernc.org/sqlite"
)

func main() {
	s, err := store.Open(store.Options{Path: os.Args[1]})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	for i := 0; i < 2; i++ {
		t := time.Now()
		es, err := s.ActiveBanExpiries(time.Now())
		fmt.Println("ActiveBanExpiries:", len(es), err, time.Since(t))
	}
	db, _ := sql.Open("sqlite", "file:"+os.Args[1]+"?_pragma=query_only(1)")
	now := time.Now().UnixMilli()
	for _, q := range []string{
		`SELECT prefix, jail, detector, reason, evidence, created, expires, offence FROM bans WHERE (expires IS NULL OR expires > ?)`,
		`SELECT prefix, jail, detector, reason, evidence, created, expires, offence FROM bans WHERE (+expires IS NULL OR +expires > ?)`,
	} {
		t := time.Now()
		rows, _ := db.Query(q, now)
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		fmt.Printf("%d rows in %v (no Scan): %s\n", n, time.Since(t), q)
	}
}
