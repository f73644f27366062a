package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

func numCPU() int { return runtime.NumCPU() }

// A 3x5 bitmap font: enough for labels made of digits, capitals and a few
// signs. Each glyph is 5 rows of 3 bits.
var glyphs = map[rune][5]uint8{
	'0': {7, 5, 5, 5, 7}, '1': {2, 6, 2, 2, 7}, '2': {7, 1, 7, 4, 7}, '3': {7, 1, 7, 1, 7},
	'4': {5, 5, 7, 1, 1}, '5': {7, 4, 7, 1, 7}, '6': {7, 4, 7, 5, 7}, '7': {7, 1, 1, 1, 1},
	'8': {7, 5, 7, 5, 7}, '9': {7, 5, 7, 1, 7}, '.': {0, 0, 0, 0, 2}, '/': {1, 1, 2, 4, 4},
	'-': {0, 0, 7, 0, 0}, ':': {0, 2, 0, 2, 0}, ' ': {}, '%': {5, 1, 2, 4, 5}, 'X': {5, 5, 2, 5, 5},
	'A': {2, 5, 7, 5, 5}, 'B': {6, 5, 6, 5, 6}, 'C': {7, 4, 4, 4, 7}, 'D': {6, 5, 5, 5, 6},
	'E': {7, 4, 6, 4, 7}, 'F': {7, 4, 6, 4, 4}, 'G': {7, 4, 5, 5, 7}, 'H': {5, 5, 7, 5, 5},
	'I': {7, 2, 2, 2, 7}, 'K': {5, 5, 6, 5, 5}, 'L': {4, 4, 4, 4, 7}, 'M': {5, 7, 7, 5, 5},
	'N': {6, 5, 5, 5, 5}, 'O': {7, 5, 5, 5, 7}, 'P': {7, 5, 7, 4, 4}, 'R': {6, 5, 6, 5, 5},
	'S': {7, 4, 7, 1, 7}, 'T': {7, 2, 2, 2, 2}, 'U': {5, 5, 5, 5, 7}, 'W': {5, 5, 7, 7, 5},
	'Y': {5, 5, 2, 2, 2}, 'Q': {7, 5, 5, 7, 1}, 'V': {5, 5, 5, 5, 2},
}

type canvas struct{ *image.RGBA }

func newCanvas(w, h int) canvas {
	c := canvas{image.NewRGBA(image.Rect(0, 0, w, h))}
	c.rect(0, 0, w, h, color.RGBA{255, 255, 255, 255})
	return c
}

func (c canvas) rect(x0, y0, x1, y1 int, col color.Color) {
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			c.Set(x, y, col)
		}
	}
}

// text draws s with its top-left corner at (x, y), scale px per dot.
func (c canvas) text(x, y, scale int, s string, col color.Color) {
	for _, r := range strings.ToUpper(s) {
		g := glyphs[r]
		for row := 0; row < 5; row++ {
			for bit := 0; bit < 3; bit++ {
				if g[row]&(4>>bit) != 0 {
					c.rect(x+bit*scale, y+row*scale, x+(bit+1)*scale, y+(row+1)*scale, col)
				}
			}
		}
		x += 4 * scale
	}
}

func (c canvas) line(x0, y0, x1, y1 int, col color.Color) {
	dx, dy := x1-x0, y1-y0
	n := max(abs(dx), abs(dy), 1)
	for i := 0; i <= n; i++ {
		x, y := x0+dx*i/n, y0+dy*i/n
		c.rect(x-1, y-1, x+2, y+2, col)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func (c canvas) save(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, c)
}

var (
	black  = color.RGBA{0, 0, 0, 255}
	grey   = color.RGBA{200, 200, 200, 255}
	blue   = color.RGBA{40, 90, 200, 255}
	orange = color.RGBA{230, 120, 30, 255}
)

// charts writes e2e-scaling.png (grouped bars: pipeline vs no-op asynq per
// process count) and e2e-latency.png (the publication -> bid distribution
// as a CDF).
func charts(r *result, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Scaling.
	const W, H, L, B, T = 640, 400, 70, 50, 50
	c := newCanvas(W, H)
	top := 0.0
	for _, n := range []int{1, 2, 4} {
		top = max(top, r.Pipeline[n], r.Noop[n])
	}
	top = niceCeil(top)
	c.text(L, 12, 3, "TASKS/S: PIPELINE (BLUE) VS NO-OP ASYNQ (ORANGE)", black)
	for i := 0; i <= 4; i++ {
		y := H - B - (H-B-T)*i/4
		c.rect(L, y, W-20, y+1, grey)
		c.text(5, y-5, 2, fmt.Sprintf("%.0f", top*float64(i)/4), black)
	}
	groupW := (W - L - 20) / 3
	for gi, n := range []int{1, 2, 4} {
		x := L + gi*groupW + groupW/6
		bw := groupW / 3
		for bi, v := range []float64{r.Pipeline[n], r.Noop[n]} {
			h := int(float64(H-B-T) * v / top)
			col := blue
			if bi == 1 {
				col = orange
			}
			c.rect(x+bi*bw, H-B-h, x+(bi+1)*bw-4, H-B, col)
			c.text(x+bi*bw, H-B-h-14, 2, fmt.Sprintf("%.0f", v), black)
		}
		c.text(x+bw/2, H-B+10, 3, fmt.Sprintf("%d W %.2fX", n, r.Ratio[n]), black)
	}
	c.rect(L, H-B, W-20, H-B+2, black)
	if err := c.save(filepath.Join(dir, "e2e-scaling.png")); err != nil {
		return err
	}

	// Latency CDF.
	c = newCanvas(W, H)
	lat := r.Latencies
	xmax := niceCeil(lat[len(lat)-1])
	c.text(L, 12, 3, fmt.Sprintf("PUBLICATION TO BID MS CDF: P50 %.0f P99 %.0f", r.P50, r.P99), black)
	for i := 0; i <= 4; i++ {
		y := H - B - (H-B-T)*i/4
		c.rect(L, y, W-20, y+1, grey)
		c.text(20, y-5, 2, fmt.Sprintf("%d%%", 25*i), black)
		x := L + (W-20-L)*i/4
		c.rect(x, T, x+1, H-B, grey)
		c.text(x-10, H-B+10, 2, fmt.Sprintf("%.0f", xmax*float64(i)/4), black)
	}
	px, py := L, H-B
	for i, v := range lat {
		x := L + int(float64(W-20-L)*v/xmax)
		y := H - B - (H-B-T)*(i+1)/len(lat)
		c.line(px, py, x, y, blue)
		px, py = x, y
	}
	c.text(W/2-40, H-B+28, 2, "MS", black)
	return c.save(filepath.Join(dir, "e2e-latency.png"))
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := 1.0
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
