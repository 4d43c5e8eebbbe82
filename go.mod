module github.com/fungistor/fungistor

go 1.26.8
