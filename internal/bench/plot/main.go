// Command plot draws the scale benchmark's PNG plots from the CSV files
// that make bench-scale writes (internal/bench: -scale.out DIR):
//
//	go run ./internal/bench/plot -in DIR -out docs/img
//
// It writes throughput-ENGINE.png (operations per second by goroutines,
// authdb solid, the baseline dashed) from curve.csv, and
// cleanup-ENGINE-JOB.png (p99 per 250 ms window over time, the job's
// windows shaded) from timeline.csv, for the first setting of each job. Only
// the standard library is used: the text is drawn with a built-in 3x5
// pixel font.
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func main() {
	in := flag.String("in", ".", "directory holding curve.csv and timeline.csv")
	out := flag.String("out", ".", "directory for the PNG files")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	if rows, err := readCSV(filepath.Join(*in, "curve.csv")); err == nil {
		if err := curves(rows, *out); err != nil {
			log.Fatal(err)
		}
	} else if !os.IsNotExist(err) {
		log.Fatal(err)
	}
	if rows, err := readCSV(filepath.Join(*in, "timeline.csv")); err == nil {
		if err := timelines(rows, *out); err != nil {
			log.Fatal(err)
		}
	} else if !os.IsNotExist(err) {
		log.Fatal(err)
	}
}

// readCSV returns the rows as maps by the header's names.
func readCSV(path string) ([]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			if i < len(r) {
				m[h] = r[i]
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func num(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

var palette = []color.RGBA{{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}, {148, 103, 189, 255}}

func curves(rows []map[string]string, dir string) error {
	var engines []string
	for _, r := range rows {
		if !slices.Contains(engines, r["engine"]) {
			engines = append(engines, r["engine"])
		}
	}
	for _, engine := range engines {
		var gs []float64
		var ops []string
		for _, r := range rows {
			if r["engine"] != engine {
				continue
			}
			if g := num(r["goroutines"]); !slices.Contains(gs, g) {
				gs = append(gs, g)
			}
			if !slices.Contains(ops, r["op"]) {
				ops = append(ops, r["op"])
			}
		}
		slices.Sort(gs)
		p := newPlot(engine+": operations per second by goroutines (authdb solid, baseline dashed)", "goroutines", "ops/s")
		for i, g := range gs {
			p.xticks = append(p.xticks, tick{float64(i), strconv.Itoa(int(g))})
		}
		p.xmin, p.xmax = -0.2, float64(len(gs))-0.8
		for k, op := range ops {
			for _, impl := range []string{"authdb", "baseline"} {
				var s series
				s.name, s.color, s.dashed = op+" "+impl, palette[k%len(palette)], impl == "baseline"
				for _, r := range rows {
					if r["engine"] == engine && r["op"] == op && r["impl"] == impl {
						s.x = append(s.x, float64(slices.Index(gs, num(r["goroutines"]))))
						s.y = append(s.y, num(r["ops_per_s"]))
					}
				}
				if len(s.x) > 0 {
					p.series = append(p.series, s)
				}
			}
		}
		if err := p.save(filepath.Join(dir, "throughput-"+engine+".png")); err != nil {
			return err
		}
	}
	return nil
}

func timelines(rows []map[string]string, dir string) error {
	type key struct{ engine, job string }
	setting := map[key]string{}
	var keys []key
	for _, r := range rows {
		k := key{r["engine"], r["job"]}
		if _, ok := setting[k]; !ok {
			setting[k] = r["setting"]
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		p := newPlot(fmt.Sprintf("%s: p99 per 250 ms, %s job (%s) running when shaded", k.engine, k.job, setting[k]), "seconds", "p99 ms")
		var ops []string
		for _, r := range rows {
			if r["engine"] == k.engine && r["job"] == k.job && r["setting"] == setting[k] {
				if !slices.Contains(ops, r["op"]) {
					ops = append(ops, r["op"])
				}
				p.shade = nil
				for _, iv := range strings.Fields(r["busy_ms"]) {
					a, b, _ := strings.Cut(iv, "-")
					p.shade = append(p.shade, [2]float64{num(a) / 1000, num(b) / 1000})
				}
			}
		}
		for i, op := range ops {
			s := series{name: op, color: palette[i%len(palette)]}
			for _, r := range rows {
				if r["engine"] == k.engine && r["job"] == k.job && r["setting"] == setting[k] && r["op"] == op {
					s.x = append(s.x, num(r["t_ms"])/1000)
					s.y = append(s.y, num(r["p99_us"])/1000)
				}
			}
			p.series = append(p.series, s)
		}
		name := fmt.Sprintf("cleanup-%s-%s.png", k.engine, k.job)
		if err := p.save(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// ---- a small line plot ----

type series struct {
	name   string
	x, y   []float64
	color  color.RGBA
	dashed bool
}

type tick struct {
	v     float64
	label string
}

type plot struct {
	title, xlabel, ylabel string
	series                []series
	xticks                []tick // nil: computed
	xmin, xmax            float64
	shade                 [][2]float64 // spans shaded
}

func newPlot(title, xlabel, ylabel string) *plot {
	return &plot{title: title, xlabel: xlabel, ylabel: ylabel, xmin: math.NaN()}
}

const (
	width, height      = 1000, 560
	left, right        = 90, 300
	top, bottom        = 40, 60
	plotW, plotH       = width - left - right, height - top - bottom
	scale              = 2 // font pixels
	glyphW, glyphH     = 3 * scale, 5 * scale
	glyphGap           = scale
	legendLine, legend = 30, 22
)

func (p *plot) save(path string) error {
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fill(img, img.Bounds(), color.RGBA{255, 255, 255, 255})
	xmin, xmax := p.xmin, p.xmax
	ymax := 0.0
	for _, s := range p.series {
		for i := range s.x {
			if math.IsNaN(p.xmin) {
				if math.IsNaN(xmin) || s.x[i] < xmin {
					xmin = s.x[i]
				}
				if math.IsNaN(xmax) || s.x[i] > xmax {
					xmax = s.x[i]
				}
			}
			ymax = max(ymax, s.y[i])
		}
	}
	if math.IsNaN(xmin) || xmax <= xmin {
		xmin, xmax = 0, 1
	}
	ystep := niceStep(ymax / 5)
	ymax = math.Ceil(ymax/ystep) * ystep
	if ymax == 0 {
		ymax, ystep = 1, 0.2
	}
	px := func(x float64) int { return left + int((x-xmin)/(xmax-xmin)*plotW) }
	py := func(y float64) int { return top + plotH - int(y/ymax*plotH) }
	grid := color.RGBA{225, 225, 225, 255}
	black := color.RGBA{0, 0, 0, 255}
	for _, sh := range p.shade {
		if sh[1] > sh[0] {
			fill(img, image.Rect(max(px(sh[0]), left), top, min(px(sh[1]), left+plotW), top+plotH), color.RGBA{255, 240, 190, 255})
		}
	}
	for y := 0.0; y <= ymax+ystep/2; y += ystep {
		line(img, left, py(y), left+plotW, py(y), grid, false)
		lbl := fmtNum(y)
		text(img, left-8-textW(lbl), py(y)-glyphH/2, lbl, black)
	}
	xt := p.xticks
	if xt == nil {
		step := niceStep((xmax - xmin) / 8)
		for x := math.Ceil(xmin/step) * step; x <= xmax; x += step {
			xt = append(xt, tick{x, fmtNum(x)})
		}
	}
	for _, t := range xt {
		line(img, px(t.v), top, px(t.v), top+plotH, grid, false)
		text(img, px(t.v)-textW(t.label)/2, top+plotH+8, t.label, black)
	}
	line(img, left, top, left, top+plotH, black, false)
	line(img, left, top+plotH, left+plotW, top+plotH, black, false)
	text(img, left, 12, p.title, black)
	text(img, left+plotW/2-textW(p.xlabel)/2, height-24, p.xlabel, black)
	text(img, 8, top-20, p.ylabel, black)
	for i, s := range p.series {
		for k := 1; k < len(s.x); k++ {
			thick(img, px(s.x[k-1]), py(s.y[k-1]), px(s.x[k]), py(s.y[k]), s.color, s.dashed)
		}
		if len(s.x) == 1 {
			fill(img, image.Rect(px(s.x[0])-2, py(s.y[0])-2, px(s.x[0])+3, py(s.y[0])+3), s.color)
		}
		ly := top + 10 + i*legend
		thick(img, left+plotW+20, ly, left+plotW+20+legendLine, ly, s.color, s.dashed)
		text(img, left+plotW+28+legendLine, ly-glyphH/2, s.name, black)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

func fmtNum(v float64) string {
	switch {
	case v >= 1e6 && math.Mod(v, 1e5) == 0:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e4 && math.Mod(v, 100) == 0:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// line draws a one-pixel line (Bresenham), dashed in 8-pixel steps.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, dashed bool) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	n := 0
	for {
		if !dashed || (n/8)%2 == 0 {
			img.SetRGBA(x0, y0, c)
		}
		n++
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func thick(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, dashed bool) {
	for _, d := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
		line(img, x0+d[0], y0+d[1], x1+d[0], y1+d[1], c, dashed)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

func textW(s string) int { return len([]rune(s)) * (glyphW + glyphGap) }

func text(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for _, r := range strings.ToUpper(s) {
		g, ok := font[r]
		if !ok {
			g = font['?']
		}
		for row := range 5 {
			for col := range 3 {
				if g[row*3+col] == '#' {
					fill(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale), c)
				}
			}
		}
		x += glyphW + glyphGap
	}
}

// font is a 3x5 pixel font, rows top to bottom.
var font = map[rune]string{
	'0': "####.##.##.####", '1': ".#.##..#..#.###", '2': "###..#####..###", '3': "###..####..####",
	'4': "#.##.####..#..#", '5': "####..###..####", '6': "####..####.####", '7': "###..#..#..#..#",
	'8': "####.#####.####", '9': "####.####..####", 'A': ".#.#.#####.##.#", 'B': "##.#.###.#.###.",
	'C': "####..#..#..###", 'D': "##.#.##.##.###.", 'E': "####..##.#..###", 'F': "####..##.#..#..",
	'G': "####..#.##.####", 'H': "#.##.#####.##.#", 'I': "###.#..#..#.###", 'J': "..#..#..##.####",
	'K': "#.##.###.#.##.#", 'L': "#..#..#..#..###", 'M': "#.########.##.#", 'N': "##.#.##.##.##.#",
	'O': "####.##.##.####", 'P': "####.#####..#..", 'Q': "####.##.####..#", 'R': "##.#.###.#.##.#",
	'S': "####..###..####", 'T': "###.#..#..#..#.", 'U': "#.##.##.##.####", 'V': "#.##.##.##.#.#.",
	'W': "#.##.########.#", 'X': "#.##.#.#.#.##.#", 'Y': "#.##.#.#..#..#.", 'Z': "###..#.#.#..###",
	' ': "...............", '.': ".............#.", ',': "..........#.#..", '/': "..#..#.#.#..#..",
	'-': "......###......", '(': ".#.#..#..#...#.", ')': ".#...#..#..#.#.", ':': "....#.....#....",
	'%': "#.#..#.#.#..#.#", '_': "............###", '=': "...###...###...", '+': "....#.###.#....",
	'?': "###..#.##....#.", 'µ': "#.##.##.#####..", '[': "##.#..#..#..##.", ']': ".##..#..#..#.##",
	'<': "..#.#.#...#...#", '>': "#...#...#.#.#..", '*': "...#.#.#.#.#...",
}
