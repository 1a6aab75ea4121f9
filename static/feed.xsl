<?xml version="1.0" encoding="utf-8"?>
<!-- Shows this blog's Atom and RSS feeds as a readable page in a browser (#23): what a feed
     is, how to follow it, and the newest posts. Only text and links are shown, never the
     posts' HTML, so nothing in a feed can run here. -->
<xsl:stylesheet version="1.0"
  xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
  xmlns:atom="http://www.w3.org/2005/Atom">
  <xsl:output method="html" encoding="utf-8" indent="yes"
    doctype-system="about:legacy-compat"/>
  <xsl:variable name="title" select="/atom:feed/atom:title | /rss/channel/title"/>
  <xsl:template match="/">
    <html lang="en">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <meta name="color-scheme" content="light dark"/>
        <title><xsl:value-of select="$title"/> (feed)</title>
        <style>
          body { font: 1.0625rem/1.65 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1.25rem; color: #1d1d1f; background: #fff; }
          a { color: #1a56b8; }
          .about { background: #f5f5f8; border: 1px solid #d8d8e0; border-radius: 6px; padding: 0.75rem 1rem; }
          code { word-break: break-all; }
          li { margin: 0 0 1rem; }
          .muted { color: #5a5a66; font-size: 0.92rem; }
          @media (prefers-color-scheme: dark) {
            body { color: #e8e8ee; background: #15161a; }
            a { color: #8ab4ff; }
            .about { background: #1f2026; border-color: #33343c; }
            .muted { color: #a9a9b8; }
          }
        </style>
      </head>
      <body>
        <main>
          <div class="about">
            <p><strong>This is a web feed</strong> of <xsl:value-of select="$title"/>. Copy this
            page's address into a feed reader (NetNewsWire, Feedly, Inoreader, Thunderbird...) to
            be told of every new post.</p>
          </div>
          <h1><xsl:value-of select="$title"/></h1>
          <p><a>
            <xsl:attribute name="href"><xsl:value-of select="/atom:feed/atom:link[@rel='alternate']/@href | /rss/channel/link"/></xsl:attribute>
            Visit the site</a></p>
          <h2>Newest posts</h2>
          <ul>
            <xsl:apply-templates select="/atom:feed/atom:entry | /rss/channel/item"/>
          </ul>
        </main>
      </body>
    </html>
  </xsl:template>
  <xsl:template match="atom:entry">
    <li>
      <a><xsl:attribute name="href"><xsl:value-of select="atom:link[@rel='alternate']/@href"/></xsl:attribute><xsl:value-of select="atom:title"/></a>
      <div class="muted"><xsl:value-of select="substring(atom:published, 1, 10)"/></div>
      <div><xsl:value-of select="atom:summary"/></div>
    </li>
  </xsl:template>
  <xsl:template match="item">
    <li>
      <a><xsl:attribute name="href"><xsl:value-of select="link"/></xsl:attribute>
        <xsl:choose><xsl:when test="title"><xsl:value-of select="title"/></xsl:when><xsl:otherwise>A note</xsl:otherwise></xsl:choose></a>
      <div class="muted"><xsl:value-of select="pubDate"/></div>
    </li>
  </xsl:template>
</xsl:stylesheet>
