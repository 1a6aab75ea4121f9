// Drag to reorder the menus of /admin/navigation. Without this file the Move up / Move
// down buttons do the same; with it, a dropped link sends the menu's new order at once.
(function () {
  "use strict";

  document.querySelectorAll("ol.nav-links").forEach(function (list) {
    var menu = list.getAttribute("data-menu");
    var form = document.querySelector('form.nav-reorder[data-menu="' + menu + '"]');
    if (!form) {
      return;
    }
    var dragged = null;

    function order() {
      return Array.prototype.map.call(list.querySelectorAll("li.nav-link"), function (item) {
        return item.getAttribute("data-id");
      }).join(",");
    }

    list.querySelectorAll("li.nav-link").forEach(function (item) {
      item.setAttribute("draggable", "true");
      item.classList.add("draggable");
      item.addEventListener("dragstart", function (event) {
        dragged = item;
        item.classList.add("dragging");
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", item.getAttribute("data-id"));
      });
      item.addEventListener("dragend", function () {
        item.classList.remove("dragging");
        dragged = null;
      });
      item.addEventListener("dragover", function (event) {
        if (!dragged || dragged === item) {
          return;
        }
        event.preventDefault();
        var box = item.getBoundingClientRect();
        var after = event.clientY > box.top + box.height / 2;
        list.insertBefore(dragged, after ? item.nextSibling : item);
      });
    });

    list.addEventListener("drop", function (event) {
      event.preventDefault();
      var field = form.querySelector('input[name="order"]');
      var wanted = order();
      if (field.value !== wanted) {
        field.value = wanted;
        form.submit();
      }
    });
  });
})();
