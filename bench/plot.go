package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strings"
)

// The scaling plot is drawn with the standard library alone: the project
// takes no dependency for one chart, and a 5×7 bitmap font (below) is
// enough for axis labels.

// plotLine is one series of the plot: y values at the plot's x positions,
// NaN where not measured.
type plotLine struct {
	name string
	ys   []float64
}

var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
}

const (
	fontScale = 2             // each font pixel is drawn 2×2: legible without a vector font
	glyphW    = 6 * fontScale // 5 columns and a space
	glyphH    = 7 * fontScale // 7 rows
	lineH     = glyphH + 8    // text line pitch
	plotW     = 960           // image width
	plotH     = 540           // image height without the legend
	marginL   = 120           // room for y tick labels
	marginR   = 40
	marginT   = 72 // room for the title and the y axis title
	marginB   = 84 // room for x tick labels and the axis title
)

// writePlot draws lines over log-scaled x (xs, e.g. cache sizes) and y
// (nanoseconds) axes and writes the image as PNG to path.
func writePlot(path, title, xTitle, yTitle string, xs []float64, xLabels []string, lines []plotLine) error {
	h := plotH + lineH*len(lines) + 8
	img := image.NewRGBA(image.Rect(0, 0, plotW, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	ink := color.RGBA{40, 40, 40, 255}
	grid := color.RGBA{225, 225, 225, 255}

	// Axis ranges: x padded by a fraction of a decade, y widened to whole decades.
	x0, x1 := math.Log10(xs[0])-0.15, math.Log10(xs[len(xs)-1])+0.15
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, l := range lines {
		for _, y := range l.ys {
			if y > 0 && !math.IsNaN(y) {
				lo, hi = min(lo, y), max(hi, y)
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	y0, y1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if y1 == y0 {
		y1++
	}
	left, right, top, bottom := marginL, plotW-marginR, marginT, plotH-marginB
	px := func(x float64) int { return left + int((math.Log10(x)-x0)/(x1-x0)*float64(right-left)) }
	py := func(y float64) int { return bottom - int((math.Log10(y)-y0)/(y1-y0)*float64(bottom-top)) }

	// Grid and ticks: one line per decade of y, one per x position.
	for d := y0; d <= y1; d++ {
		y := py(math.Pow(10, d))
		hline(img, left, right, y, grid)
		label := nsLabel(math.Pow(10, d))
		drawText(img, left-10-textWidth(label), y-glyphH/2, label, ink)
	}
	for i, x := range xs {
		X := px(x)
		vline(img, X, top, bottom, grid)
		drawText(img, X-textWidth(xLabels[i])/2, bottom+10, xLabels[i], ink)
	}
	hline(img, left, right, bottom, ink)
	vline(img, left, top, bottom, ink)
	drawText(img, (plotW-textWidth(title))/2, 12, title, ink)
	drawText(img, left+(right-left-textWidth(xTitle))/2, bottom+10+lineH+6, xTitle, ink)
	drawText(img, 8, top-lineH-2, yTitle, ink)

	for i, l := range lines {
		c := palette[i%len(palette)]
		prev := image.Point{-1, -1}
		for j, y := range l.ys {
			if math.IsNaN(y) || y <= 0 {
				prev = image.Point{-1, -1}
				continue
			}
			p := image.Pt(px(xs[j]), py(y))
			if prev.X >= 0 {
				drawLine(img, prev, p, c)
			}
			fillRect(img, p.X-4, p.Y-4, p.X+5, p.Y+5, c)
			prev = p
		}
		// Legend, one series a line under the axis title.
		ly := plotH + i*lineH
		fillRect(img, left, ly+glyphH/2-2, left+28, ly+glyphH/2+2, c)
		drawText(img, left+40, ly, l.name, ink)
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

// nsLabel names a power of ten of nanoseconds: 10 ns, 1 µs, 100 ms …
func nsLabel(ns float64) string {
	for _, u := range []struct {
		div  float64
		name string
	}{{1e9, "s"}, {1e6, "ms"}, {1e3, "µs"}, {1, "ns"}} {
		if ns >= u.div {
			return fmt.Sprintf("%g %s", math.Round(ns/u.div), u.name)
		}
	}
	return fmt.Sprintf("%g ns", ns)
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	for x := x0; x <= x1; x++ {
		img.Set(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	for y := y0; y <= y1; y++ {
		img.Set(x, y, c)
	}
}

func fillRect(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	draw.Draw(img, image.Rect(x0, y0, x1, y1), image.NewUniform(c), image.Point{}, draw.Src)
}

// drawLine draws a 3-pixel-wide line (Bresenham, a square brush).
func drawLine(img *image.RGBA, a, b image.Point, c color.Color) {
	dx, dy := abs(b.X-a.X), -abs(b.Y-a.Y)
	sx, sy := sign(b.X-a.X), sign(b.Y-a.Y)
	e := dx + dy
	for p := a; ; {
		fillRect(img, p.X-1, p.Y-1, p.X+2, p.Y+2, c)
		if p == b {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			p.X += sx
		} else {
			e += dx
			p.Y += sy
		}
	}
}

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func textWidth(s string) int { return len([]rune(s)) * glyphW }

// drawText writes s with its top-left corner at (x, y).
func drawText(img *image.RGBA, x, y int, s string, c color.Color) {
	for _, r := range s {
		g, ok := font5x7[r]
		if !ok {
			g = font5x7['?']
		}
		for row, bits := range strings.Fields(g) {
			for col, bit := range bits {
				if bit == '1' {
					fillRect(img, x+col*fontScale, y+row*fontScale, x+(col+1)*fontScale, y+(row+1)*fontScale, c)
				}
			}
		}
		x += glyphW
	}
}

// font5x7 is a 5×7 bitmap font in the style of the HD44780 character ROM:
// seven rows of five pixels per glyph, top to bottom; letters with a
// descender (g j p q y) have an eighth row below the baseline.
var font5x7 = map[rune]string{
	' ':  "00000 00000 00000 00000 00000 00000 00000",
	'0':  "01110 10001 10011 10101 11001 10001 01110",
	'1':  "00100 01100 00100 00100 00100 00100 01110",
	'2':  "01110 10001 00001 00010 00100 01000 11111",
	'3':  "11111 00010 00100 00010 00001 10001 01110",
	'4':  "00010 00110 01010 10010 11111 00010 00010",
	'5':  "11111 10000 11110 00001 00001 10001 01110",
	'6':  "00110 01000 10000 11110 10001 10001 01110",
	'7':  "11111 00001 00010 00100 01000 01000 01000",
	'8':  "01110 10001 10001 01110 10001 10001 01110",
	'9':  "01110 10001 10001 01111 00001 00010 01100",
	'A':  "01110 10001 10001 10001 11111 10001 10001",
	'B':  "11110 10001 10001 11110 10001 10001 11110",
	'C':  "01110 10001 10000 10000 10000 10001 01110",
	'D':  "11100 10010 10001 10001 10001 10010 11100",
	'E':  "11111 10000 10000 11110 10000 10000 11111",
	'F':  "11111 10000 10000 11110 10000 10000 10000",
	'G':  "01110 10001 10000 10111 10001 10001 01111",
	'H':  "10001 10001 10001 11111 10001 10001 10001",
	'I':  "01110 00100 00100 00100 00100 00100 01110",
	'J':  "00111 00010 00010 00010 00010 10010 01100",
	'K':  "10001 10010 10100 11000 10100 10010 10001",
	'L':  "10000 10000 10000 10000 10000 10000 11111",
	'M':  "10001 11011 10101 10101 10001 10001 10001",
	'N':  "10001 10001 11001 10101 10011 10001 10001",
	'O':  "01110 10001 10001 10001 10001 10001 01110",
	'P':  "11110 10001 10001 11110 10000 10000 10000",
	'Q':  "01110 10001 10001 10001 10101 10010 01101",
	'R':  "11110 10001 10001 11110 10100 10010 10001",
	'S':  "01111 10000 10000 01110 00001 00001 11110",
	'T':  "11111 00100 00100 00100 00100 00100 00100",
	'U':  "10001 10001 10001 10001 10001 10001 01110",
	'V':  "10001 10001 10001 10001 10001 01010 00100",
	'W':  "10001 10001 10001 10101 10101 10101 01010",
	'X':  "10001 10001 01010 00100 01010 10001 10001",
	'Y':  "10001 10001 10001 01010 00100 00100 00100",
	'Z':  "11111 00001 00010 00100 01000 10000 11111",
	'a':  "00000 00000 01110 00001 01111 10001 01111",
	'b':  "10000 10000 10110 11001 10001 10001 11110",
	'c':  "00000 00000 01110 10000 10000 10001 01110",
	'd':  "00001 00001 01101 10011 10001 10001 01111",
	'e':  "00000 00000 01110 10001 11111 10000 01110",
	'f':  "00110 01001 01000 11100 01000 01000 01000",
	'g':  "00000 00000 01111 10001 10001 01111 00001 01110",
	'h':  "10000 10000 10110 11001 10001 10001 10001",
	'i':  "00100 00000 01100 00100 00100 00100 01110",
	'j':  "00010 00000 00110 00010 00010 00010 10010 01100",
	'k':  "10000 10000 10010 10100 11000 10100 10010",
	'l':  "01100 00100 00100 00100 00100 00100 01110",
	'm':  "00000 00000 11010 10101 10101 10001 10001",
	'n':  "00000 00000 10110 11001 10001 10001 10001",
	'o':  "00000 00000 01110 10001 10001 10001 01110",
	'p':  "00000 00000 11110 10001 10001 11110 10000 10000",
	'q':  "00000 00000 01111 10001 10001 01111 00001 00001",
	'r':  "00000 00000 10110 11001 10000 10000 10000",
	's':  "00000 00000 01110 10000 01110 00001 11110",
	't':  "01000 01000 11100 01000 01000 01001 00110",
	'u':  "00000 00000 10001 10001 10001 10011 01101",
	'v':  "00000 00000 10001 10001 10001 01010 00100",
	'w':  "00000 00000 10001 10001 10101 10101 01010",
	'x':  "00000 00000 10001 01010 00100 01010 10001",
	'y':  "00000 00000 10001 10001 10001 01111 00001 01110",
	'z':  "00000 00000 11111 00010 00100 01000 11111",
	'.':  "00000 00000 00000 00000 00000 01100 01100",
	',':  "00000 00000 00000 00000 01100 00100 01000",
	':':  "00000 01100 01100 00000 01100 01100 00000",
	'(':  "00010 00100 01000 01000 01000 00100 00010",
	')':  "01000 00100 00010 00010 00010 00100 01000",
	'/':  "00000 00001 00010 00100 01000 10000 00000",
	'-':  "00000 00000 00000 11111 00000 00000 00000",
	'+':  "00000 00100 00100 11111 00100 00100 00000",
	'=':  "00000 00000 11111 00000 11111 00000 00000",
	'%':  "11000 11001 00010 00100 01000 10011 00011",
	'<':  "00010 00100 01000 10000 01000 00100 00010",
	'>':  "01000 00100 00010 00001 00010 00100 01000",
	'\'': "00100 00100 01000 00000 00000 00000 00000",
	'_':  "00000 00000 00000 00000 00000 00000 11111",
	'?':  "01110 10001 00001 00010 00100 00000 00100",
	'µ':  "00000 00000 10001 10001 10011 11101 10000",
}
